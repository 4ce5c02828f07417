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
"""
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import METHODS
from ..render.geometry import ImageGeometry
from ..structures import Map2D
from ..structures.boxes import box_iou
from ..structures.detection import Detection
from ..utils.errors import UserInputError
from .base import Explainer
from .cam import CAMResult, DetectedBatch, EvalMode, detect


@dataclass
class Predictions:
    """One image's predictions as D-RISE reads them.

    Attributes:
        boxes: ``(P, 4)`` ``x1, y1, x2, y2``.
        scores: ``(P,)`` score of the predicted class.
        labels: ``(P,)`` predicted class.
        class_vectors: ``(P, C)`` per-class probabilities where the model gives them.
        objectness: ``(P,)`` objectness where the model has one.
    """
    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    class_vectors: Optional[torch.Tensor] = None
    objectness: Optional[torch.Tensor] = None


def similarity(targets: Predictions, preds: Predictions) -> torch.Tensor:
    """``(T,)`` best D-RISE similarity of each target among ``preds`` (0 without predictions).

    With class vectors on both sides: ``IoU x cosine x objectness`` (objectness 1 where absent);
    otherwise ``IoU x [same label] x score`` (see the module docstring)."""
    n_t = targets.boxes.shape[0]
    if preds.boxes.shape[0] == 0 or n_t == 0:
        return targets.boxes.new_zeros(n_t)
    iou = box_iou(targets.boxes.float(), preds.boxes.float().to(targets.boxes.device))
    if targets.class_vectors is not None and preds.class_vectors is not None:
        cos = F.normalize(targets.class_vectors.float(), dim=1) @ F.normalize(
            preds.class_vectors.float().to(iou.device), dim=1).T
        obj = preds.objectness if preds.objectness is not None else None
    else:
        cos = (targets.labels[:, None].to(iou.device) == preds.labels[None, :].to(iou.device))
        obj = preds.scores
    sim = iou * cos.to(iou.dtype)
    if obj is not None:
        sim = sim * obj.float().to(iou.device)[None, :]
    return sim.max(dim=1).values


class RandomMasks:
    """``n`` seeded RISE masks over an ``h x w`` region, made batch by batch.

    Args:
        n: Number of masks (> 0).
        grid: Cells per side of the binary grid (1 <= grid <= min(h, w)).
        prob: Probability that a cell is kept, in (0, 1).
        shape: ``(h, w)`` of the region the masks cover.
        seed: Seed of the ``torch.Generator`` the grids and shifts are drawn from.
    """

    def __init__(self, n: int, grid: int, prob: float, shape: Tuple[int, int],
                 seed: int = 0) -> None:
        check_drise_options(n, grid, prob, shape)
        self.n, self.grid, self.prob = int(n), int(grid), float(prob)
        self.h, self.w = int(shape[0]), int(shape[1])
        self.cell = (math.ceil(self.h / self.grid), math.ceil(self.w / self.grid))
        gen = torch.Generator().manual_seed(int(seed))
        self.grids = torch.rand(self.n, 1, self.grid, self.grid, generator=gen) < self.prob
        self.shifts = torch.stack([torch.randint(0, self.cell[0], (self.n, ), generator=gen),
                                   torch.randint(0, self.cell[1], (self.n, ), generator=gen)], 1)

    def __len__(self) -> int:
        return self.n

    def batch(self, start: int, stop: int, device='cpu') -> torch.Tensor:
        """Masks ``start .. stop - 1`` as a ``(B, h, w)`` float tensor on ``device``."""
        up = ((self.grid + 1) * self.cell[0], (self.grid + 1) * self.cell[1])
        grids = self.grids[start:stop].to(device=device, dtype=torch.float32)
        big = F.interpolate(grids, size=up, mode='bilinear', align_corners=False)[:, 0]
        shifts = self.shifts[start:stop].to(device)
        rows = shifts[:, :1] + torch.arange(self.h, device=device)  # (B, h)
        cols = shifts[:, 1:] + torch.arange(self.w, device=device)  # (B, w)
        items = torch.arange(grids.shape[0], device=device)[:, None, None]
        return big[items, rows[:, :, None], cols[:, None, :]]


class FixedMasks:
    """Given masks ``(N, h, w)`` in the :class:`RandomMasks` interface (tests, benchmarks,
    comparisons with other implementations)."""

    def __init__(self, masks: torch.Tensor) -> None:
        self.masks = torch.as_tensor(masks, dtype=torch.float32)
        self.n, self.h, self.w = self.masks.shape

    def __len__(self) -> int:
        return self.n

    def batch(self, start: int, stop: int, device='cpu') -> torch.Tensor:
        return self.masks[start:stop].to(device)


def check_drise_options(n: int, grid: int, prob: float, shape: Sequence[int]) -> None:
    """One-line errors for D-RISE options that cannot work on an ``h x w`` region."""
    if int(n) <= 0:
        raise UserInputError(f'--drise-masks must be > 0, got {n}')
    if not 0.0 < float(prob) < 1.0:
        raise UserInputError(f'--drise-prob must be in (0, 1), got {prob}')
    if int(grid) < 1 or int(grid) > min(int(shape[0]), int(shape[1])):
        raise UserInputError(f'--drise-grid {grid} does not fit the {int(shape[1])}x'
                             f'{int(shape[0])} input (1 <= grid <= {min(shape[:2])})')


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or 'out of memory' in str(err).lower()


def fill_tensor(fill, image: torch.Tensor) -> torch.Tensor:
    """``fill`` (a number or a ``(3, 1, 1)`` tensor) broadcastable to a batch like ``image``."""
    fill = torch.as_tensor(fill, dtype=image.dtype, device=image.device)
    return fill.reshape(1, -1, 1, 1) if fill.dim() else fill


def masked_weights(predict: Callable[[torch.Tensor], List[Predictions]], image: torch.Tensor,
                   region: Tuple[int, int, int, int], targets: Predictions, m: torch.Tensor,
                   fill: torch.Tensor) -> torch.Tensor:
    """``(T, B)`` similarity of each target in each of the ``B`` images masked by ``m``
    (``(B, h, w)`` over ``region``); ``fill`` from :func:`fill_tensor`. One forward pass."""
    y0, y1, x0, x1 = region
    crop = image[:, :, y0:y1, x0:x1]
    batch = image.expand(m.shape[0], -1, -1, -1).clone()
    batch[:, :, y0:y1, x0:x1] = fill + (crop - fill) * m[:, None]
    try:
        with torch.no_grad():
            preds = predict(batch)
    except (RuntimeError, MemoryError) as err:
        if not _is_oom(err):
            raise
        del batch
        if image.device.type == 'cuda':
            torch.cuda.empty_cache()
        raise UserInputError(f'D-RISE: a batch of {m.shape[0]} masked images does not fit '
                             f'in memory; try a smaller --drise-batch') from None
    return torch.stack([similarity(targets, p) for p in preds], dim=1).to(image.device)


def drise_saliency(predict: Callable[[torch.Tensor], List[Predictions]], image: torch.Tensor,
                   region: Tuple[int, int, int, int], targets: Predictions, masks: RandomMasks,
                   batch_size: int = 16, fill=0.0, center: bool = False,
                   progress: bool = False) -> torch.Tensor:
    """Raw D-RISE saliency of each target (model-agnostic core).

    Args:
        predict: Masked images ``(B, 3, H, W)`` -> predictions per image (no grad needed).
        image: ``(1, 3, H, W)`` input tensor.
        region: ``(y0, y1, x0, x1)`` of the image content in ``image``; masks cover it.
        targets: The detections to explain (``T`` of them), in ``predict``'s coordinates.
        masks: Masks of the region's size.
        batch_size: Masked images per forward pass.
        fill: Value of an occluded pixel (a number or a ``(3, 1, 1)`` tensor).
        center: Subtract each target's mean weight times the mask sum (the variant of
            ``vision-explanation-methods``); the paper's plain weighted sum without it.
        progress: Show an mmengine ProgressBar over the masks.

    Returns:
        ``(T, h, w)`` float tensor, not normalised.
    """
    y0, y1, x0, x1 = region
    if (y1 - y0, x1 - x0) != (masks.h, masks.w):
        raise ValueError(f'masks are {masks.h}x{masks.w}, region is {y1 - y0}x{x1 - x0}')
    if batch_size < 1:
        raise UserInputError(f'--drise-batch must be >= 1, got {batch_size}')
    device = image.device
    fill = fill_tensor(fill, image)
    n_t = targets.boxes.shape[0]
    acc = torch.zeros(n_t, masks.h * masks.w, device=device)
    mask_sum = torch.zeros(masks.h * masks.w, device=device)
    weight_sum = torch.zeros(n_t, device=device)
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(masks))
    for start in range(0, len(masks), batch_size):
        stop = min(start + batch_size, len(masks))
        m = masks.batch(start, stop, device)
        w = masked_weights(predict, image, region, targets, m, fill)
        flat = m.reshape(m.shape[0], -1)
        acc += w @ flat
        mask_sum += flat.sum(0)
        weight_sum += w.sum(1)
        if bar is not None:
            bar.update(stop - start)
    if center:
        acc -= (weight_sum / len(masks))[:, None] * mask_sum[None]
    return acc.reshape(n_t, masks.h, masks.w)


def normalise(saliency: torch.Tensor) -> np.ndarray:
    """Min-max to [0, 1] (a flat map becomes zeros)."""
    s = saliency.detach().float().cpu().numpy()
    lo, hi = float(s.min()), float(s.max())
    return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)


def content_region(geom: ImageGeometry) -> Tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` integer pixels of the image content in the network input."""
    x0, y0, x1, y1 = geom.content_box
    in_h, in_w = geom.input_shape
    r0, c0 = max(0, int(round(y0))), max(0, int(round(x0)))
    r1, c1 = min(in_h, int(round(y1))), min(in_w, int(round(x1)))
    return r0, max(r0 + 1, r1), c0, max(c0 + 1, c1)


def preprocessor_fill(model: nn.Module, channels: int = 3) -> torch.Tensor:
    """The normalised value of a black pixel: ``-mean / std`` of the data preprocessor (0 if it
    does not normalise)."""
    pre = getattr(model, 'data_preprocessor', None)
    mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
    if getattr(pre, '_enable_normalize', False) and mean is not None and std is not None:
        return (-mean / std).reshape(-1, 1, 1).float()
    return torch.zeros(channels, 1, 1)


def mmdet_predict(model: nn.Module, data_sample) -> Callable[[torch.Tensor], List[Predictions]]:
    """``predict`` for :func:`drise_saliency` from an MMDet / MMYOLO detector and one image's
    preprocessed data sample (boxes in original-image pixels, top label + score per box)."""
    from mmdet.structures import DetDataSample
    metainfo = dict(data_sample.metainfo)

    def predict(batch: torch.Tensor) -> List[Predictions]:
        samples = [DetDataSample(metainfo=metainfo) for _ in range(batch.shape[0])]
        out = []
        for r in model.predict(batch, samples, rescale=True):  # type: ignore[operator]
            p = r.pred_instances
            out.append(Predictions(p.bboxes, p.scores, p.labels))
        return out

    return predict


@METHODS.register_module(name='drise')
class DRISE(Explainer):
    """D-RISE maps per kept detection of an MMDet / MMYOLO detector (the CAM contract).

    Args:
        num_masks: ``N`` (``--drise-masks``), or ``'auto'``: stop once the maps converged (see
            :mod:`.drise_auto`).
        grid: Grid cells per side (``--drise-grid``).
        prob: Probability a cell is kept (``--drise-prob``).
        batch_size: Masked images per forward pass (``--drise-batch``); ``None``: 4 on a CPU,
            16 on a GPU (on a CPU large batches cost more per image, see benchmarks/results.md).
        seed: Seed of the masks (``--seed``).
        center: See :func:`drise_saliency` (``auto`` always centres).
        progress: Show a ProgressBar over the masks of each image.
        sampling: Mask scheme (``--drise-sampling``); ``None``: ``random`` for a number ``N``,
            :data:`.drise_auto.AUTO_SAMPLING` for ``auto``.
        tol: ``auto``: largest change between checkpoints of a converged map (``--drise-tol``).
        max_masks: ``auto``: cap on ``N`` (``--drise-max-masks``).
        check_every: ``auto``: masks between checkpoints.
    """

    name = 'drise'

    def __init__(self, num_masks=1000, grid: int = 16, prob: float = 0.5,
                 batch_size: Optional[int] = None, seed: int = 0, center: bool = False,
                 progress: bool = True, sampling: Optional[str] = None, tol: float = 0.1,
                 max_masks: int = 4000, check_every: int = 50) -> None:
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

    def explain(self, model: nn.Module, data: Optional[dict] = None, score_thr: float = 0.3,
                topk: int = 10, detected: Optional[DetectedBatch] = None) -> CAMResult:
        """Explain every kept detection of every image of a prepared batch (as
        :meth:`~.cam.DetectionCAM.explain`); the image-level map weighs each mask by the sum
        of the targets' similarities."""
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

    def batch_for(self, device: torch.device) -> int:
        """The batch size on ``device`` (the given one, else 16 on CUDA and 4 on a CPU)."""
        if self.batch_size is not None:
            return self.batch_size
        return 16 if device.type == 'cuda' else 4

    def _saliency(self, predict, image: torch.Tensor, region, targets: Predictions,
                  fill: torch.Tensor):
        """Raw maps ``(T, h, w)`` and the metadata of the run (``N`` used, scheme ...)."""
        from .drise_auto import ConvergenceMonitor, drise_saliency_auto, make_masks
        shape = (region[1] - region[0], region[3] - region[2])
        meta = dict(grid=self.grid, sampling=self.sampling)
        batch = self.batch_for(image.device)
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
                         change=round(float(monitor.change), 6), max_masks=self.max_masks)

    def _explain_image(self, model: nn.Module, sample, image: torch.Tensor,
                       dets: List[Detection]):
        if not dets:
            return [], None
        geom = ImageGeometry.from_metainfo(sample.metainfo)
        region = content_region(geom)
        device = image.device
        targets = Predictions(
            torch.as_tensor(np.stack([d.bbox for d in dets]), device=device),
            torch.as_tensor([d.score for d in dets], device=device),
            torch.as_tensor([d.label for d in dets], device=device))
        raw, meta = self._saliency(mmdet_predict(model, sample), image.detach(), region, targets,
                                   preprocessor_fill(model).to(device))
        ori_h, ori_w = geom.ori_shape
        maps = []
        for d, s in zip(dets, raw):
            m = cv2.resize(normalise(s), (ori_w, ori_h), interpolation=cv2.INTER_LINEAR)
            maps.append(Map2D(m, 'drise', dict(method='drise', rank=d.rank, aligned=True,
                                                **meta)))
        total = cv2.resize(normalise(raw.sum(0)), (ori_w, ori_h), interpolation=cv2.INTER_LINEAR)
        return maps, Map2D(total, 'drise (image)', dict(method='drise', aligned=True, **meta))


__all__ = ['Predictions', 'similarity', 'RandomMasks', 'FixedMasks', 'check_drise_options',
           'drise_saliency', 'masked_weights', 'fill_tensor', 'content_region',
           'preprocessor_fill', 'mmdet_predict', 'DRISE']
