"""A faster copy of the detector for D-RISE's masked forward passes (``--drise-fast``).

D-RISE runs the detector on hundreds to thousands of masked copies of one image, and on a CPU
the network is most of that cost. The masked passes can run on a copy of the model prepared for
inference; the user's model is never touched:

* a deep copy (its forward hooks and pre-hooks dropped: D-RISE reads predictions only, and a
  capture hook on the model would otherwise fire for every masked image);
* every BatchNorm that follows a convolution folded into it (mmcv's ``fuse_conv_bn``, what
  MMDet's ``tools/test.py --fuse-conv-bn`` uses);
* on a CPU, weights and inputs in channels-last memory format (oneDNN's native layout);
* for MMYOLO's YOLOv5-style heads, a post-processing that activates and decodes only the priors
  above the objectness threshold instead of all of them (the same predictions:
  :mod:`mmattnvis.compat.mmyolo_yolov5_post`).

Measured on the COCO YOLOv5-n (benchmarks/results.md): 1.34x on the network, outputs within
3e-5; post-processing of a masked 640 px image 13-15 -> 5-6 ms. Folding relies on the order
in which a module registers its children (a convolution followed by its BatchNorm), as mmcv's
helper does; the copy is therefore **checked** before it is used: the D-RISE similarities of
the targets and of every prediction above :data:`CHECK_SCORE` on the unmasked image must agree
with the model's (the sample's ``pred_instances`` from the detection pass, no second forward of
the model) to :data:`CHECK_TOL` both ways, else D-RISE uses the model itself and the log says
why. The same holds when the model cannot be copied or folded.
"""
import copy
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from .drise_core import Predictions, mmdet_predict, similarity

CHECK_SCORE = 0.05  # predictions above this score take part in the check
CHECK_TOL = 1e-3  # largest allowed difference of a similarity between copy and model


def _hook_memo(model: nn.Module) -> dict:
    """``deepcopy`` memo that keeps every hook function as it is (not copied with its owner)."""
    memo: dict = {}
    for module in model.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks,
                      module._backward_hooks, getattr(module, '_backward_pre_hooks', {})):
            for hook in hooks.values():
                memo[id(hook)] = hook
    return memo


def inference_copy(model: nn.Module, channels_last: bool) -> nn.Module:
    """A copy of ``model`` in eval mode, without hooks, BatchNorm folded into the convolutions,
    (``channels_last``) in channels-last memory format and, for MMYOLO YOLOv5-style heads, with
    the post-processing that decodes only the priors it keeps
    (:mod:`mmattnvis.compat.mmyolo_yolov5_post`); ``model`` is unchanged."""
    from mmcv.cnn import fuse_conv_bn

    from ..compat.mmyolo_yolov5_post import keep_only_kept_priors
    dup = copy.deepcopy(model, _hook_memo(model))
    for module in dup.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
        module._backward_hooks.clear()
    dup.eval()
    dup.requires_grad_(False)
    with torch.no_grad():
        dup = fuse_conv_bn(dup)
    if channels_last:
        dup = dup.to(memory_format=torch.channels_last)
    keep_only_kept_priors(dup)
    return dup


def _above(preds: Predictions, score: float) -> Predictions:
    keep = preds.scores >= score
    return Predictions(preds.boxes[keep], preds.scores[keep], preds.labels[keep])


def _concat(a: Predictions, b: Predictions) -> Predictions:
    return Predictions(torch.cat([a.boxes.float(), b.boxes.float().to(a.boxes.device)]),
                       torch.cat([a.scores.float(), b.scores.float().to(a.scores.device)]),
                       torch.cat([a.labels, b.labels.to(a.labels.device)]))


def disagreement(ours: Predictions, theirs: Predictions, targets: Predictions) -> float:
    """Largest difference between the D-RISE similarities computed against ``ours`` and
    against ``theirs``, for ``targets`` and for every prediction of either side above
    :data:`CHECK_SCORE` (0: the two predict the same for D-RISE's purpose)."""
    probe = _concat(_concat(targets, _above(ours, CHECK_SCORE)), _above(theirs, CHECK_SCORE))
    if probe.boxes.shape[0] == 0:
        return 0.0
    return float((similarity(probe, ours) - similarity(probe, theirs)).abs().max())


class FastPredictor:
    """D-RISE's ``predict`` on a checked inference copy of ``model``, built once for all the
    images of a batch; each image checks the copy against the model before it is used.

    Args:
        model: The detector (left as it is).
        device: Where the masked passes run (channels-last on a CPU only).
        log: Where to say why the copy is not used.
    """

    def __init__(self, model: nn.Module, device: torch.device,
                 log: Optional[Callable[[str], None]] = None) -> None:
        self.model, self.log = model, log
        self.channels_last = device.type == 'cpu'
        self.copy: Optional[nn.Module] = None
        self.reason = ''
        try:
            self.copy = inference_copy(model, self.channels_last)
        except Exception as err:  # a model that cannot be copied or folded: run it as it is
            self.reason = f'the model could not be copied and folded ({err!r})'
            self._say(self.reason)  # once for the batch, not per image

    def for_image(self, sample, image: torch.Tensor, targets: Predictions
                  ) -> Tuple[Callable[[torch.Tensor], List[Predictions]], dict]:
        """``predict`` for one image's masked passes and ``{'fast': bool}`` (with
        ``fast_reason`` when the model itself runs them).

        Args:
            sample: The image's preprocessed data sample.
            image: ``(1, 3, H, W)`` the unmasked input, for the check.
            targets: The detections D-RISE explains.
        """
        plain = mmdet_predict(self.model, sample)
        if self.copy is None:
            return plain, dict(fast=False, fast_reason=self.reason)
        copy_predict = mmdet_predict(self.copy, sample)
        channels_last = self.channels_last

        def predict(batch: torch.Tensor) -> List[Predictions]:
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            return copy_predict(batch)

        with torch.no_grad():
            theirs = (Predictions.from_instances(sample.pred_instances)
                      if 'pred_instances' in sample else plain(image)[0])  # detect() keeps them
            gap = disagreement(predict(image)[0], theirs, targets)
        if gap > CHECK_TOL:
            return self._fallback(plain, f'the folded copy predicts differently (similarity '
                                  f'off by {gap:.2g} > {CHECK_TOL:g})')
        return predict, dict(fast=True)

    def _say(self, reason: str) -> None:
        if self.log is not None:
            self.log(f'D-RISE: running the model as it is: {reason}')

    def _fallback(self, plain, reason: str) -> Tuple[Callable, dict]:
        self._say(reason)
        return plain, dict(fast=False, fast_reason=reason)


__all__ = ['inference_copy', 'disagreement', 'FastPredictor', 'CHECK_SCORE', 'CHECK_TOL']
