"""D-RISE: black-box saliency per detection (Petsiuk et al., CVPR 2021).

``N`` random masks occlude the image; each masked image goes through the detector and every
target detection gets a weight per mask, the best *detection similarity* between the target and
the masked image's predictions. A target's saliency is the weighted sum of the masks.

* **Masks** (RISE / D-RISE): a ``grid x grid`` binary grid, each cell on with probability ``p``,
  upsampled bilinearly to ``(grid + 1)`` cells of ``ceil(h / grid) x ceil(w / grid)`` pixels and
  cropped at a random shift of less than one cell to the image region ``h x w``. They are drawn
  from a seeded ``torch.Generator`` before batching, so the masks do not depend on the batch size.
* **Where masks apply**: on the preprocessed input tensor (after the data preprocessor), only on
  the image's content region (letterbox / batch padding untouched); occluded pixels get the
  normalised value of a black pixel (``-mean / std`` of the data preprocessor), i.e. the image is
  multiplied by the mask before normalisation, as in the paper. One preprocessing pass per image.
* **Similarity** ``d(t, p) = IoU(t, p) x cos(c_t, c_p) x o_p``. MMDet and MMYOLO predictions keep
  only the top label and score of each box (the per-class vectors are discarded by the heads'
  post-processing: softmax heads take the arg-max, sigmoid heads the (score, label) pairs above
  the threshold), so a prediction's class vector is ``score x one_hot(label)``: the cosine is then
  ``[same label]`` and the score takes the place of the objectness factor, so
  ``d = IoU x [same label] x score``, the similarity :class:`~.cam.DetectionTarget` uses.
  When a prediction provides full vectors (``Predictions.class_vectors``: softmax probabilities
  for softmax heads, per-class sigmoid scores for sigmoid heads) and, where the model has one,
  ``objectness``, the paper's cosine and objectness are used as they are.
* All targets of an image are weighted from the same masked passes; maps are min-max normalised
  to [0, 1] and sampled on the original image's pixel grid, like the CAM maps.
* ``num_masks='auto'`` (``--drise-masks auto``) stops once the map has converged and other mask
  schemes (``--drise-sampling``) need fewer forwards: see :mod:`.drise_auto`.
* ``region='box'`` (``--drise-region box``) masks each detection's own box only (the grid
  over the box, the rest of the image as it is), ``N`` passes per detection: which parts of
  the box the detection needs, at the box's resolution rather than the image's. Measured on the
  shapes YOLOv5-n (docs/faithfulness/trust/), no better at that than whole-image masks: the
  box's smaller cells change the score less per mask.
* ``fast`` (``--drise-fast``; on for ``auto``) runs the masked passes on a checked inference copy
  of the model (BatchNorm folded, channels-last on a CPU): see :mod:`.drise_fast`.
"""
import logging
from typing import TYPE_CHECKING, List, Optional

import torch
from torch import nn

from ..registry import METHODS
from ..render.geometry import ImageGeometry
from ..structures import Map2D
from ..structures.detection import Detection
from ..utils.errors import UserInputError
from .base import Explainer

if TYPE_CHECKING:
    from .drise_fast import FastPredictor
from .cam import CAMResult, DetectedBatch, EvalMode, detect
from .drise_core import (  # noqa: F401  (D-RISE's building blocks, importable from here)
    CPU_BATCH_PIXELS,
    FixedMasks,
    Predictions,
    RandomMasks,
    _is_oom,
    box_region,
    check_drise_options,
    content_region,
    drise_saliency,
    fill_tensor,
    masked_batch_size,
    masked_weights,
    mmdet_predict,
    normalise,
    on_original,
    preprocessor_fill,
    similarity,
)

#: Where the masks apply (``--drise-region``).
REGIONS = ('image', 'box')


def _warn(message: str) -> None:
    from mmengine.logging import print_log
    print_log(message, logger='current', level=logging.WARNING)


@METHODS.register_module(name='drise')
class DRISE(Explainer):
    """D-RISE maps per kept detection of an MMDet / MMYOLO detector (the CAM contract).

    Args:
        num_masks: ``N`` (``--drise-masks``), or ``'auto'``: stop once the maps converged (see
            :mod:`.drise_auto`).
        grid: Grid cells per side (``--drise-grid``).
        prob: Probability a cell is kept (``--drise-prob``).
        batch_size: Masked images per forward pass (``--drise-batch``); ``None``: 16 on a GPU;
            on a CPU as many as fit :data:`CPU_BATCH_PIXELS` input pixels, 1 to 4 (on a CPU
            large batches cost more per image, see benchmarks/results.md).
        seed: Seed of the masks (``--seed``).
        center: See :func:`drise_saliency` (``auto`` always centres).
        progress: Show a ProgressBar over the masks of each image.
        sampling: Mask scheme (``--drise-sampling``); ``None``: ``random`` for a number ``N``,
            :data:`.drise_auto.AUTO_SAMPLING` for ``auto``.
        tol: ``auto``: largest change between checkpoints of a converged map (``--drise-tol``).
        max_masks: ``auto``: cap on ``N`` (``--drise-max-masks``).
        check_every: ``auto``: masks between checkpoints.
        fast: Run the masked passes on a checked inference copy of the model (BatchNorm
            folded, channels-last on a CPU; see :mod:`.drise_fast`; ``--drise-fast``);
            ``None``: on for ``auto``, off for a number ``N`` (plain D-RISE runs the model).
        region: Where the masks apply (``--drise-region``): ``image`` (the paper: the whole
            image, every target from the same passes) or ``box`` (each target's own box, the
            rest of the image as it is: ``N`` passes per detection, the grid over the box; the
            map is 0 outside the box and says which parts of the box the detection needs).
    """

    name = 'drise'

    def __init__(self, num_masks=1000, grid: int = 16, prob: float = 0.5,
                 batch_size: Optional[int] = None, seed: int = 0, center: bool = False,
                 progress: bool = True, sampling: Optional[str] = None, tol: float = 0.1,
                 max_masks: int = 4000, check_every: int = 50,
                 fast: Optional[bool] = None, region: str = 'image') -> None:
        from .drise_auto import AUTO_SAMPLING, ConvergenceMonitor, check_sampling
        self.auto = isinstance(num_masks, str)
        if self.auto and num_masks != 'auto':
            raise UserInputError(f'--drise-masks takes a number or auto, got {num_masks!r}')
        check_drise_options(max_masks if self.auto else num_masks, grid, prob, (grid, grid))
        if batch_size is not None and int(batch_size) < 1:
            raise UserInputError(f'--drise-batch must be >= 1, got {batch_size}')
        if self.auto and int(max_masks) < 2 * int(check_every):
            raise UserInputError(f'--drise-max-masks must be >= {2 * int(check_every)} '
                                 f'(two checkpoints of {int(check_every)} masks), got '
                                 f'{max_masks}')
        self.sampling = sampling or (AUTO_SAMPLING if self.auto else 'random')
        check_sampling(self.sampling)
        ConvergenceMonitor(tol)  # checks tol
        self.method = 'drise'
        self.num_masks = 'auto' if self.auto else int(num_masks)
        self.grid, self.prob = int(grid), float(prob)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.seed = int(seed)
        self.center, self.progress = center, progress
        self.tol, self.max_masks, self.check_every = float(tol), int(max_masks), int(check_every)
        self.fast = self.auto if fast is None else bool(fast)
        if region not in REGIONS:
            raise UserInputError(f'--drise-region must be one of {", ".join(REGIONS)}, got '
                                 f'{region!r}')
        self.region = region

    def explain(self, model: nn.Module, data: Optional[dict] = None, score_thr: float = 0.3,
                topk: int = 10, detected: Optional[DetectedBatch] = None) -> CAMResult:
        """Explain every kept detection of every image of a prepared batch (as
        :meth:`~.cam.DetectionCAM.explain`); the image-level map weighs each mask by the sum
        of the targets' similarities."""
        if detected is None:
            detected = detect(model, data, score_thr, topk)  # type: ignore[arg-type]
        result = CAMResult(detected.samples, detected.detections, [], [])
        with EvalMode(model):
            fast = None
            if self.fast and any(detected.detections):
                from .drise_fast import FastPredictor
                fast = FastPredictor(model, detected.inputs.device, _warn)
            for b, (sample, dets) in enumerate(zip(detected.samples, detected.detections)):
                maps, image_map = self._explain_image(model, sample, detected.inputs[b:b + 1],
                                                      dets, fast)
                result.maps.append(maps)
                result.image_maps.append(image_map)
        return result

    def batch_for(self, image: torch.Tensor) -> int:
        """The batch size for masked copies of ``image`` ``(1, 3, H, W)``: the given one, else
        16 on CUDA and on a CPU ``CPU_BATCH_PIXELS // (H W)`` clipped to 1..4."""
        return masked_batch_size(image, self.batch_size)

    def _saliency(self, predict, image: torch.Tensor, region, targets: Predictions,
                  fill: torch.Tensor):
        """Raw maps ``(T, h, w)`` and the metadata of the run (``N`` used, scheme ...)."""
        from .drise_auto import ConvergenceMonitor, drise_saliency_auto, make_masks
        shape = (region[1] - region[0], region[3] - region[2])
        meta = dict(grid=self.grid, sampling=self.sampling)
        batch = self.batch_for(image)
        if not self.auto:
            masks = make_masks(int(self.num_masks), self.grid, self.prob, shape, self.seed,
                               self.sampling)
            raw = drise_saliency(predict, image, region, targets, masks, batch, fill,
                                 self.center, self.progress)
            return raw, dict(meta, num_masks=self.num_masks)
        masks = make_masks(self.max_masks, self.grid, self.prob, shape, self.seed,
                           self.sampling)
        monitor = ConvergenceMonitor(self.tol, min_masks=2 * self.check_every)
        raw, n, converged = drise_saliency_auto(predict, image, region, targets, masks,
                                                monitor, batch, fill, self.check_every,
                                                self.progress)
        return raw, dict(meta, num_masks=n, converged=converged, tol=self.tol,
                         change=round(float(monitor.change), 6), max_masks=self.max_masks,
                         target_changes=[round(float(c), 6) for c in monitor.target_changes])

    def _explain_image(self, model: nn.Module, sample, image: torch.Tensor,
                       dets: List[Detection], fast: Optional['FastPredictor'] = None):
        if not dets:
            return [], None
        geom = ImageGeometry.from_metainfo(sample.metainfo)
        region = content_region(geom)
        device = image.device
        targets = Predictions.from_detections(dets, device)
        if fast is not None:
            predict, speed = fast.for_image(sample, image.detach(), targets)
        else:
            predict, speed = mmdet_predict(model, sample), dict(fast=False)
        fill = preprocessor_fill(model).to(device)
        if self.region == 'box':
            raw, meta = self._box_saliency(predict, image.detach(), geom, region, dets, targets,
                                           fill)
        else:
            raw, meta = self._saliency(predict, image.detach(), region, targets, fill)
        meta.update(speed, region=self.region)
        changes = meta.pop('target_changes', None)
        maps = []
        for i, (d, s) in enumerate(zip(dets, raw)):
            m = on_original(normalise(s), geom)
            own = dict(meta)
            if changes:  # auto: this map's own change, and whether it alone has converged
                own.update(change=changes[i], map_converged=changes[i] <= self.tol)
            maps.append(Map2D(m, 'drise', dict(method='drise', rank=d.rank, aligned=True,
                                                **own)))
        total = on_original(normalise(raw.sum(0)), geom)
        return maps, Map2D(total, 'drise (image)', dict(method='drise', aligned=True, **meta))

    def _box_saliency(self, predict, image: torch.Tensor, geom: ImageGeometry, content,
                      dets: List[Detection], targets: Predictions, fill: torch.Tensor):
        """``region='box'``: each target's maps from masks over its own box, min-max normalised
        in the box and 0 outside it, on the content region's grid (``(T, h, w)``)."""
        y0, _, x0, _ = content
        out = torch.zeros(len(dets), content[1] - y0, content[3] - x0, device=image.device)
        metas = []
        for i, d in enumerate(dets):
            b = box_region(geom, [float(v) for v in d.bbox[:4]], content, self.grid)
            raw, meta = self._saliency(predict, image, b, targets.one(i), fill)
            out[i, b[0] - y0:b[1] - y0, b[2] - x0:b[3] - x0] = torch.from_numpy(
                normalise(raw[0])).to(out)
            metas.append(meta)
        meta = dict(metas[0])
        if self.auto:  # each detection's own N and change; the image's: the largest
            meta.update(num_masks=max(m['num_masks'] for m in metas),
                        converged=all(m['converged'] for m in metas),
                        change=max(m['change'] for m in metas),
                        target_changes=[m['target_changes'][0] for m in metas])
        meta['box_masks'] = [m['num_masks'] for m in metas]
        return out, meta


__all__ = ['REGIONS', 'Predictions', 'similarity', 'RandomMasks', 'FixedMasks',
           'check_drise_options', 'box_region', 'drise_saliency', 'masked_weights',
           'fill_tensor', 'content_region', 'preprocessor_fill', 'mmdet_predict', 'DRISE']
