"""Shared by the tests of the per-box black-box maps (``--drise-region box``, ``--method
occlusion``): a constructed detector that reads half of a box, and where a map must be 0."""
import numpy as np
import torch

from mmattnvis.methods.drise_core import Predictions

BOX = (16., 16., 48., 48.)  # 32 x 32 px on a 64 x 64 image


def left_half_detector(seen):
    """One fixed prediction at BOX whose score is the mean of channel 0 over the box's left
    half (rows 16:48, cols 16:32); ``seen`` collects every perturbed batch."""

    def predict(batch):
        seen.append(batch.clone())
        s = batch[:, 0, 16:48, 16:32].mean(dim=(1, 2))
        return [Predictions(torch.tensor([BOX]), s[i:i + 1], torch.tensor([1]))
                for i in range(batch.shape[0])]

    return predict


def far_from_box(shape, box, margin: int = 2) -> np.ndarray:
    """Pixels of an image of ``shape`` more than ``margin`` px from ``box`` (``x0, y0, x1, y1``):
    where a map over the box must be 0 after its resampling to the original image."""
    x0, y0, x1, y1 = box
    far = np.ones(shape, bool)
    far[max(0, int(y0) - margin):int(np.ceil(y1)) + margin,
        max(0, int(x0) - margin):int(np.ceil(x1)) + margin] = False
    return far
