"""Numbers that say whether a saliency map shows what a detector uses.

* **Pointing game** (Zhang et al., 2016): a hit when the map's maximum lies inside the box
  (within ``tolerance`` pixels).
* **Energy-based pointing game** (Wang et al., Score-CAM 2020): the share of the map's
  (non-negative) mass that falls inside the box.
* **Deletion / insertion** (Petsiuk et al., RISE 2018; D-RISE 2021 for detectors): remove (or
  reveal) pixels in the map's order and follow the detection's similarity, IoU x class score of
  the best-matching prediction of the same class; the area under that curve over the removed
  fraction. Deletion: lower is better; insertion: higher is better.
* Baselines for all of them: a random map (:func:`random_saliency`) and two degenerate maps
  that know only the box (:func:`box_saliency`, :func:`box_blur_saliency`). A metric on which
  one of these beats a method says nothing about that method.

Everything here works on numpy arrays in original-image pixels; the detector is reached only
through a ``scorer`` callable, so the functions are testable on constructed cases.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..render.geometry import box_slices
from ..structures.boxes import BoxLike, box_iou


def pointing_game(saliency: np.ndarray, box: BoxLike, tolerance: float = 0.0) -> bool:
    """Whether the map's maximum is inside ``box`` (``x1, y1, x2, y2``), give or take
    ``tolerance`` pixels. With several maxima, a hit if any of them is inside."""
    sal = np.asarray(saliency, dtype=np.float32)
    if not np.isfinite(sal).all() or sal.max() <= sal.min():
        return False  # a flat map points nowhere
    rows, cols = np.nonzero(sal == sal.max())
    x1, y1, x2, y2 = (float(v) for v in box)
    # Pixel (r, c) covers [c, c + 1) x [r, r + 1); use its centre.
    cx, cy = cols + 0.5, rows + 0.5
    dx = np.maximum(0.0, np.maximum(x1 - cx, cx - x2))
    dy = np.maximum(0.0, np.maximum(y1 - cy, cy - y2))
    return bool((np.hypot(dx, dy) <= tolerance).any())


def energy_pointing_game(saliency: np.ndarray, box: BoxLike) -> float:
    """Share of the map's non-negative mass inside ``box`` (0 for an all-zero map)."""
    sal = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    total = sal.sum()
    if total <= 0:
        return 0.0
    rs, cs = box_slices(box, sal.shape)
    return float(sal[rs, cs].sum() / total)


def detection_similarity(box: BoxLike, label: int, pred_boxes: np.ndarray,
                         pred_scores: np.ndarray, pred_labels: np.ndarray) -> float:
    """D-RISE similarity with the class score as the class term: max over predictions of the
    same class of IoU(box, prediction) x score (0 when there is none)."""
    pred_labels = np.asarray(pred_labels).reshape(-1)
    same = pred_labels == int(label)
    if not same.any():
        return 0.0
    ious = box_iou(box, np.asarray(pred_boxes)[same])
    return float((ious * np.asarray(pred_scores, dtype=np.float64).reshape(-1)[same]).max())


def random_saliency(shape: Tuple[int, int], rng: np.random.Generator,
                    grid: int = 16) -> np.ndarray:
    """A random map with blobs about the size of a CAM cell: uniform noise on a ``grid``-cells
    coarse grid (along the longer side), upsampled bilinearly to ``shape``."""
    h, w = int(shape[0]), int(shape[1])
    gh = max(2, round(grid * h / max(h, w)))
    gw = max(2, round(grid * w / max(h, w)))
    coarse = rng.random((gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def box_saliency(shape: Tuple[int, int], box: BoxLike) -> np.ndarray:
    """The box itself: 1 inside ``box``, 0 elsewhere (the map a detector's output alone gives)."""
    out = np.zeros((int(shape[0]), int(shape[1])), np.float32)
    rs, cs = box_slices(box, out.shape)
    out[rs, cs] = 1.0
    return out


def box_blur_saliency(shape: Tuple[int, int], box: BoxLike) -> np.ndarray:
    """A Gaussian blob the size of ``box``: centred on it, full width at half maximum equal to
    the box's width and height (its part above half its maximum is the box's inscribed
    ellipse). Its pixel order (all that deletion and insertion see) is the same for any blob
    whose widths scale with the box's."""
    h, w = int(shape[0]), int(shape[1])
    x1, y1, x2, y2 = (float(v) for v in box)
    fwhm = 2.0 * np.sqrt(2.0 * np.log(2.0))
    sx, sy = max(x2 - x1, 1.0) / fwhm, max(y2 - y1, 1.0) / fwhm
    gx = np.exp(-0.5 * ((np.arange(w) + 0.5 - (x1 + x2) / 2) / sx) ** 2)
    gy = np.exp(-0.5 * ((np.arange(h) + 0.5 - (y1 + y2) / 2) / sy) ** 2)
    return np.outer(gy, gx).astype(np.float32)


#: Baseline maps that need no model, ``(shape, box, rng) -> map``: a random map, the box itself
#: and a blob the size of the box. The last two know only the detection's box: a metric on which
#: they beat a method is no evidence for it.
BASELINES: Dict[str, Callable[[Tuple[int, int], BoxLike, np.random.Generator], np.ndarray]] = {
    'random': lambda shape, _box, rng: random_saliency(shape, rng),
    'box': lambda shape, box, _rng: box_saliency(shape, box),
    'blur': lambda shape, box, _rng: box_blur_saliency(shape, box),
}


def _order(saliency: np.ndarray, rng: Optional[np.random.Generator],
           cell: int = 1) -> np.ndarray:
    """Pixel indices, most salient first; ties broken at random (not in raster order). With
    ``cell`` > 1, whole cells of ``cell`` x ``cell`` pixels (on the image's grid) by their mean
    value, each cell's pixels together in raster order: a map flat over a region then reveals it
    cell by cell in random order, not as scattered single pixels (which show an object's shape
    at a fraction of its pixels and so reward a flat map)."""
    sal = np.asarray(saliency, dtype=np.float64)
    if rng is None:
        rng = np.random.default_rng(0)
    if cell <= 1:
        flat = sal.ravel()
        return np.lexsort((rng.random(flat.shape[0]), -flat))
    h, w = sal.shape[:2]
    gh, gw = -(-h // cell), -(-w // cell)
    padded = np.full((gh * cell, gw * cell), np.nan)
    padded[:h, :w] = sal
    means = np.nanmean(padded.reshape(gh, cell, gw, cell), axis=(1, 3)).ravel()
    rank = np.empty(means.shape[0], np.int64)
    rank[np.lexsort((rng.random(means.shape[0]), -means))] = np.arange(means.shape[0])
    yy, xx = np.mgrid[0:h, 0:w]
    pixel_rank = rank[(yy // cell) * gw + xx // cell].ravel()
    return np.lexsort((np.arange(h * w), pixel_rank))


def perturbation_images(image: np.ndarray, saliency: np.ndarray, mode: str = 'deletion',
                        steps: int = 20, baseline: Optional[np.ndarray] = None,
                        rng: Optional[np.random.Generator] = None,
                        region: Optional[BoxLike] = None, cell: int = 1
                        ) -> Tuple[np.ndarray, List[np.ndarray]]:
    """The images of a deletion or insertion curve.

    Args:
        image: ``(H, W, C)`` image the map explains.
        saliency: ``(H, W)`` map on the image's pixel grid.
        mode: ``deletion`` (replace the most salient pixels with ``baseline``) or
            ``insertion`` (start from ``baseline`` and put them back).
        steps: Number of steps; returns ``steps + 1`` images (0 % ... 100 %).
        baseline: Replacement image; default black for deletion and a strong blur of
            ``image`` for insertion (RISE's choices).
        rng: Tie-breaking between equal map values.
        region: Perturb only the pixels of this box (``x1, y1, x2, y2``), in the map's order
            among them; the rest of the image stays as it is (insertion starts from the image
            with the box's pixels replaced). Fractions are of the box's pixels. Inside its box the
            box map has nothing to order by (a random order: the floor), and a blob centred on
            the box only the distance to the centre (the centre prior a map must beat).
        cell: Perturb cells of ``cell`` x ``cell`` pixels ranked by their mean value instead of
            single pixels (see :func:`_order`).

    Returns:
        ``(fractions, images)``.
    """
    if mode not in ('deletion', 'insertion'):
        raise ValueError(f'mode must be deletion or insertion, not {mode!r}')
    h, w = image.shape[:2]
    if saliency.shape[:2] != (h, w):
        raise ValueError(f'map {saliency.shape[:2]} and image {(h, w)} differ in size')
    if baseline is None:
        baseline = (np.zeros_like(image) if mode == 'deletion' else cv2.GaussianBlur(
            image, (0, 0), sigmaX=max(h, w) / 20.0))
    order = _order(saliency, rng, cell)
    flat_img = image.reshape(h * w, -1)
    flat_base = baseline.reshape(h * w, -1)
    start = flat_img if mode == 'deletion' else flat_base
    if region is not None:
        inside = np.zeros((h, w), bool)
        inside[box_slices(region, (h, w))] = True
        inside = inside.ravel()
        order = order[inside[order]]  # the box's pixels, most salient first
        start = flat_img.copy()
        if mode == 'insertion':
            start[inside] = flat_base[inside]
    n = order.shape[0]
    fractions = np.linspace(0.0, 1.0, steps + 1)
    src = flat_base if mode == 'deletion' else flat_img
    images = []
    for f in fractions:
        k = int(round(f * n))
        out = start.copy()
        out[order[:k]] = src[order[:k]]
        images.append(out.reshape(image.shape))
    return fractions, images


def auc(fractions: Union[Sequence[float], np.ndarray],
        values: Union[Sequence[float], np.ndarray]) -> float:
    """Trapezoidal area under ``values`` over ``fractions`` (in [0, 1])."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def perturbation_auc(image: np.ndarray, saliency: np.ndarray,
                     score_fn: Callable[[List[np.ndarray]], Sequence[float]],
                     mode: str = 'deletion', steps: int = 20,
                     baseline: Optional[np.ndarray] = None,
                     rng: Optional[np.random.Generator] = None,
                     region: Optional[BoxLike] = None,
                     cell: int = 1) -> Tuple[float, np.ndarray]:
    """Deletion or insertion AUC of one detection.

    Args:
        score_fn: Images -> the detection's similarity on each (see
            :func:`detection_similarity`); called once with all ``steps + 1`` images so it can
            batch them.
        region, cell: See :func:`perturbation_images`.

    Returns:
        ``(auc, curve)``.
    """
    fractions, images = perturbation_images(image, saliency, mode, steps, baseline, rng, region,
                                            cell)
    curve = np.asarray(list(score_fn(images)), dtype=np.float64)
    if curve.shape[0] != len(images):
        raise ValueError(f'score_fn returned {curve.shape[0]} values for {len(images)} images')
    return auc(fractions, curve), curve


__all__ = [
    'pointing_game', 'energy_pointing_game', 'box_iou', 'detection_similarity',
    'random_saliency', 'box_saliency', 'box_blur_saliency', 'BASELINES', 'perturbation_images',
    'auc', 'perturbation_auc'
]
