"""Occlusion of a detection's own box, both ways: which parts of the box the detection needs.

For each kept detection the box is cut into ``grid x grid`` cells (on the network input, the
letterbox and padding untouched). Each cell is scored twice, with the similarity D-RISE uses
(``IoU x [same label] x score`` of the best matching prediction, :func:`.drise_core.similarity`):

* **removed**: the cell set to black (the data preprocessor's fill, as D-RISE's masks), the rest
  of the image as it is; the cell's value is the similarity lost;
* **alone**: the whole box replaced by a strong blur of the image (RISE's insertion start,
  sigma = the content's longer side / 20) except this cell; the value is the similarity gained
  over the fully blurred box.

A cell's map value is the mean of the two, i.e. its marginal effect with the rest of the box
present and with it absent. ``2 grid^2 + 2`` forward passes per detection (the unperturbed image
and the fully blurred box are the two reference passes), no gradients, the model untouched.
The map is min-max normalised inside the box and 0 outside it; it has the box's cells as its
resolution, so it answers "which part of the box", not "which box" (every other detection's
pixels are 0 in it).

Measured on the in-box deletion / insertion curves (``docs/faithfulness/trust/README.md``): on
the shapes YOLOv5-n (103 detections) and RetinaNet (81) the first map well above the box prior
and level with or above D-RISE N = 1000 at 1/13-1/15 of its time; on the shapes DINO below the
box prior (not for DETRs). The curves perturb the way the map does (black, blur); built with grey
instead, its lead holds on the YOLOv5-n and is gone on RetinaNet.
"""
from typing import List, Optional, Tuple

import cv2
import numpy as np
import torch
from torch import nn

from ..registry import METHODS
from ..render.geometry import ImageGeometry
from ..structures import Map2D
from ..structures.detection import Detection
from ..utils.errors import UserInputError
from .base import Explainer
from .cam import CAMResult, DetectedBatch, EvalMode, detect
from .drise_core import (
    Predictions,
    box_region,
    content_region,
    masked_batch_size,
    masked_weights,
    mmdet_predict,
    normalise,
    on_original,
    preprocessor_fill,
)

#: The blur of the "alone" passes: sigma = the content's longer side / BLUR_DIVISOR (RISE's and
#: :func:`~mmattnvis.metrics.faithfulness.perturbation_images`' insertion start).
BLUR_DIVISOR = 20.0


def cell_edges(start: int, stop: int, grid: int) -> List[int]:
    """``grid + 1`` integer edges splitting ``start:stop`` into ``grid`` near-equal cells."""
    return [int(round(v)) for v in np.linspace(start, stop, grid + 1)]


def occlusion_masks(shape: Tuple[int, int], grid: int) -> torch.Tensor:
    """``(2 grid^2 + 2, h, w)`` masks over a box of ``shape`` (1: the image, 0: the fill): the
    unperturbed box, then each cell removed, then nothing (the fully filled box), then each cell
    alone."""
    h, w = shape
    ys, xs = cell_edges(0, h, grid), cell_edges(0, w, grid)
    n = grid * grid
    masks = torch.zeros(2 * n + 2, h, w)
    masks[:n + 1] = 1
    for k in range(n):
        i, j = divmod(k, grid)
        rows, cols = slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1])
        masks[1 + k, rows, cols] = 0
        masks[n + 2 + k, rows, cols] = 1
    return masks


def blurred(image: torch.Tensor, content: Tuple[int, int, int, int]) -> torch.Tensor:
    """The content region of ``image`` ``(1, C, H, W)`` blurred (sigma: its longer side /
    :data:`BLUR_DIVISOR`), same shape and place; the padding as it is."""
    y0, y1, x0, x1 = content
    crop = image[0, :, y0:y1, x0:x1].detach().float().cpu().numpy().transpose(1, 2, 0)
    sigma = max(y1 - y0, x1 - x0) / BLUR_DIVISOR
    blur = cv2.GaussianBlur(np.ascontiguousarray(crop), (0, 0), sigmaX=sigma)
    if blur.ndim == 2:
        blur = blur[:, :, None]
    out = image.detach().clone()
    out[0, :, y0:y1, x0:x1] = torch.from_numpy(blur.transpose(2, 0, 1)).to(out)
    return out


@METHODS.register_module(name='occlusion')
class BoxOcclusion(Explainer):
    """Occlusion maps of each kept detection's box, cell by cell, both ways (the CAM contract;
    see the module docstring).

    Args:
        grid: Cells per side of the box (``--occlusion-grid``); ``2 grid^2 + 2`` passes per
            detection.
        batch_size: Perturbed images per forward pass (``--drise-batch``); ``None``: as
            D-RISE's default.
    """

    name = 'occlusion'

    def __init__(self, grid: int = 4, batch_size: Optional[int] = None) -> None:
        if int(grid) < 1:
            raise UserInputError(f'--occlusion-grid must be >= 1, got {grid}')
        if batch_size is not None and int(batch_size) < 1:
            raise UserInputError(f'--drise-batch must be >= 1, got {batch_size}')
        self.method = 'occlusion'
        self.grid = int(grid)
        self.batch_size = None if batch_size is None else int(batch_size)

    def explain(self, model: nn.Module, data: Optional[dict] = None, score_thr: float = 0.3,
                topk: int = 10, detected: Optional[DetectedBatch] = None) -> CAMResult:
        """Explain every kept detection of every image of a prepared batch (as
        :meth:`~.cam.DetectionCAM.explain`); the image-level map is the normalised sum of the
        detections' maps."""
        if detected is None:
            detected = detect(model, data, score_thr, topk)  # type: ignore[arg-type]
        result = CAMResult(detected.samples, detected.detections, [], [])
        with EvalMode(model):
            for b, (sample, dets) in enumerate(zip(detected.samples, detected.detections)):
                maps, image_map = self._explain_image(model, sample, detected.inputs[b:b + 1],
                                                      dets)
                result.maps.append(maps)
                result.image_maps.append(image_map)
        return result

    def cell_values(self, predict, image: torch.Tensor, box: Tuple[int, int, int, int],
                    target: Predictions, fill: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        """``(grid, grid)`` values of the cells of ``box`` (``y0, y1, x0, x1`` input pixels)
        for one target: the mean of the similarity lost when the cell is removed and gained
        when it alone is shown."""
        y0, y1, x0, x1 = box
        masks = occlusion_masks((y1 - y0, x1 - x0), self.grid).to(image.device)
        n = self.grid * self.grid
        batch = masked_batch_size(image, self.batch_size)
        # the first n + 1 masks fill with black, the other n + 1 with the blurred image
        w = torch.cat([masked_weights(predict, image, box, target, masks[s:min(s + batch, e)],
                                      f)[0]
                       for b, e, f in ((0, n + 1, fill), (n + 1, 2 * n + 2, blur))
                       for s in range(b, e, batch)])
        removed = w[0] - w[1:n + 1]
        alone = w[n + 2:] - w[n + 1]
        return ((removed + alone) / 2).reshape(self.grid, self.grid)

    def cell_map(self, values: torch.Tensor, shape: Tuple[int, int]) -> torch.Tensor:
        """``values`` ``(grid, grid)`` painted on their cells of a box of ``shape`` (the
        cells of :func:`occlusion_masks`, which tile the box)."""
        n = self.grid * self.grid
        alone = occlusion_masks(shape, self.grid)[n + 2:]
        return (values.reshape(n, 1, 1).to(alone) * alone).sum(0)

    def _explain_image(self, model: nn.Module, sample, image: torch.Tensor,
                       dets: List[Detection]):
        if not dets:
            return [], None
        geom = ImageGeometry.from_metainfo(sample.metainfo)
        content = content_region(geom)
        y0, _, x0, _ = content
        image = image.detach()
        targets = Predictions.from_detections(dets, image.device)
        predict = mmdet_predict(model, sample)
        fill = preprocessor_fill(model).to(image.device).reshape(1, -1, 1, 1)
        blur_image = blurred(image, content)
        raw = torch.zeros(len(dets), content[1] - y0, content[3] - x0)
        for i, d in enumerate(dets):
            box = box_region(geom, [float(v) for v in d.bbox[:4]], content, self.grid)
            blur = blur_image[:, :, box[0]:box[1], box[2]:box[3]]
            values = self.cell_values(predict, image, box, targets.one(i), fill, blur)
            cells = self.cell_map(values.cpu(), (box[1] - box[0], box[3] - box[2]))
            raw[i, box[0] - y0:box[1] - y0, box[2] - x0:box[3] - x0] = torch.from_numpy(
                normalise(cells))
        meta = dict(grid=self.grid, region='box', forwards=2 * self.grid ** 2 + 2,
                    perturbations='black (removed) / blur (alone)')
        maps = [Map2D(on_original(s.numpy(), geom), 'occlusion',
                      dict(method='occlusion', rank=d.rank, aligned=True, **meta))
                for d, s in zip(dets, raw)]
        total = on_original(normalise(raw.sum(0)), geom)
        return maps, Map2D(total, 'occlusion (image)', dict(method='occlusion', aligned=True,
                                                             **meta))


__all__ = ['BoxOcclusion', 'occlusion_masks', 'cell_edges', 'blurred', 'BLUR_DIVISOR']
