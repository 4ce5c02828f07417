"""D-RISE's building blocks: predictions and their similarity, the masks, the weighting passes
and the map of a batch (see :mod:`.drise` for the method, :mod:`.drise_auto` for the adaptive
stopping and the other mask schemes)."""
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..render.geometry import ImageGeometry, box_slices
from ..structures.boxes import box_iou
from ..utils.errors import UserInputError


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

    @classmethod
    def from_instances(cls, instances) -> 'Predictions':
        """From MMDet ``pred_instances`` (``bboxes``, ``scores``, ``labels``)."""
        return cls(instances.bboxes, instances.scores, instances.labels)

    def one(self, i: int) -> 'Predictions':
        """Prediction ``i`` alone (a per-detection target)."""
        def part(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if t is None else t[i:i + 1]

        return Predictions(self.boxes[i:i + 1], self.scores[i:i + 1], self.labels[i:i + 1],
                           part(self.class_vectors), part(self.objectness))

    @classmethod
    def from_detections(cls, dets: Sequence, device=None) -> 'Predictions':
        """The targets of D-RISE: a list of :class:`~..structures.detection.Detection`."""
        return cls(torch.as_tensor(np.stack([d.bbox for d in dets]), device=device),
                   torch.as_tensor([d.score for d in dets], device=device),
                   torch.as_tensor([d.label for d in dets], device=device))


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


#: Input pixels per masked batch on a CPU (no batch size given): a 640 x 640 input gets
#: batches of 2, a 256 x 256 one batches of 4, the fastest per image measured on the 2-core
#: machine (benchmarks/bench_drise_fast.py: 640 px 43.5 ms at 2 vs 51.0 at 4; 256 px 7.7 ms at
#: 4 vs 9.5 at 2).
CPU_BATCH_PIXELS = 2 ** 20


def masked_batch_size(image: torch.Tensor, batch_size: Optional[int] = None) -> int:
    """Perturbed copies of ``image`` ``(1, 3, H, W)`` per forward pass: ``batch_size`` if
    given, else 16 on CUDA and on a CPU ``CPU_BATCH_PIXELS // (H W)`` clipped to 1..4."""
    if batch_size is not None:
        return int(batch_size)
    if image.device.type == 'cuda':
        return 16
    return max(1, min(4, CPU_BATCH_PIXELS // (image.shape[-2] * image.shape[-1])))


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
    accumulate(predict, image, region, targets, masks, fill, (0, len(masks)), batch_size,
               (acc, mask_sum, weight_sum), bar)
    if center:
        acc -= (weight_sum / len(masks))[:, None] * mask_sum[None]
    return acc.reshape(n_t, masks.h, masks.w)


def accumulate(predict: Callable[[torch.Tensor], List[Predictions]], image: torch.Tensor,
               region: Tuple[int, int, int, int], targets: Predictions, masks, fill: torch.Tensor,
               span: Tuple[int, int], batch_size: int, sums: Tuple[torch.Tensor, ...],
               bar=None) -> None:
    """Masks ``span[0]:span[1]`` in batches: add each target's weighted masks, the masks and
    the weights to ``sums = (acc (T, HW), mask_sum (HW,), weight_sum (T,))``, in place."""
    acc, mask_sum, weight_sum = sums
    for start in range(span[0], span[1], batch_size):
        stop = min(start + batch_size, span[1])
        m = masks.batch(start, stop, image.device)
        w = masked_weights(predict, image, region, targets, m, fill)
        flat = m.reshape(m.shape[0], -1)
        acc += w @ flat
        mask_sum += flat.sum(0)
        weight_sum += w.sum(1)
        if bar is not None:
            bar.update(stop - start)


def normalise(saliency: torch.Tensor) -> np.ndarray:
    """Min-max to [0, 1] (a flat map becomes zeros)."""
    s = saliency.detach().float().cpu().numpy()
    lo, hi = float(s.min()), float(s.max())
    return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)


def on_original(saliency: np.ndarray, geom: ImageGeometry) -> np.ndarray:
    """A map on the content region's grid resampled (bilinear) to the original image."""
    ori_h, ori_w = geom.ori_shape
    return cv2.resize(saliency, (ori_w, ori_h), interpolation=cv2.INTER_LINEAR)


def content_region(geom: ImageGeometry) -> Tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` integer pixels of the image content in the network input."""
    x0, y0, x1, y1 = geom.content_box
    in_h, in_w = geom.input_shape
    r0, c0 = max(0, int(round(y0))), max(0, int(round(x0)))
    r1, c1 = min(in_h, int(round(y1))), min(in_w, int(round(x1)))
    return r0, max(r0 + 1, r1), c0, max(c0 + 1, c1)


def box_region(geom: ImageGeometry, bbox: Sequence[float], content: Tuple[int, int, int, int],
               min_side: int = 1) -> Tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` integer input pixels of an original-image box ``x1, y1, x2, y2``
    (:func:`~..render.geometry.box_slices` of the content region: rounded outwards, clipped;
    grown about its centre to at least ``min_side`` pixels a side where the content allows)."""
    (bx0, by0), (bx1, by1) = geom.image_to_input(bbox[:2]), geom.image_to_input(bbox[2:4])
    y0, y1, x0, x1 = content
    rows, cols = box_slices((bx0 - x0, by0 - y0, bx1 - x0, by1 - y0), (y1 - y0, x1 - x0))
    out = []
    for s, size, offset in ((rows, y1 - y0, y0), (cols, x1 - x0, x0)):
        side = min(max(min_side, s.stop - s.start, 1), size)
        start = min(max(0, s.start - (side - (s.stop - s.start)) // 2), size - side)
        out += [offset + start, offset + start + side]
    return out[0], out[1], out[2], out[3]


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
        return [Predictions.from_instances(r.pred_instances)
                for r in model.predict(batch, samples, rescale=True)]  # type: ignore[operator]

    return predict
