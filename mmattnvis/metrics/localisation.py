"""How much of the object a map covers, numbers a degenerate map cannot win on their own.

* **Effective area**: the share of the detection's box where the map is at least half its
  maximum. A one-cell map (a 1x1 head's gradient at one anchor) scores near 0; a blur or the box
  itself scores 1, so it is read together with Mask-IoU and insertion, never alone.
* **Energy in the mask** (energy pointing game against the object's exact mask): the share of
  the map's non-negative mass inside the mask. Like the pointing game it is won by one cell
  inside the object, so it is a column, not a criterion.
* **Mask-IoU**: IoU of the thresholded map (at half its maximum) with the object's mask. A one
  cell and the box itself both lose to a map that covers the object (the box by the mask's
  share of the box, e.g. pi / 4 for a disc).

Plain numpy arrays in original-image pixels (``(H, W)`` maps, boolean ``(H, W)`` masks).
"""
import numpy as np

from ..render.geometry import box_slices
from ..structures.boxes import BoxLike


def above_half_max(saliency: np.ndarray, rel: float = 0.5) -> np.ndarray:
    """Boolean map of the pixels at or above ``rel`` x the map's maximum; all ``False`` for a
    flat, non-positive or non-finite map (it marks nothing)."""
    sal = np.asarray(saliency, dtype=np.float64)
    if sal.size == 0 or not np.isfinite(sal).all():
        return np.zeros(sal.shape, bool)
    top = float(sal.max())
    if top <= 0 or top <= float(sal.min()):
        return np.zeros(sal.shape, bool)
    return sal >= rel * top


def effective_area(saliency: np.ndarray, box: BoxLike, rel: float = 0.5) -> float:
    """Share of ``box``'s pixels where the map is at least ``rel`` x its (global) maximum."""
    hot = above_half_max(saliency, rel)
    rs, cs = box_slices(box, hot.shape)
    inside = hot[rs, cs]
    return float(inside.mean()) if inside.size else 0.0


def _check_mask(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.shape != np.shape(saliency)[:2]:
        raise ValueError(f'mask {mask.shape} and map {np.shape(saliency)[:2]} differ in size')
    return mask


def mask_iou(saliency: np.ndarray, mask: np.ndarray, rel: float = 0.5) -> float:
    """IoU of the map thresholded at ``rel`` x its maximum with ``mask`` (0 if both empty)."""
    mask = _check_mask(saliency, mask)
    hot = above_half_max(saliency, rel)
    union = int((hot | mask).sum())
    return float((hot & mask).sum() / union) if union else 0.0


def energy_in_mask(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's non-negative mass inside ``mask`` (0 for an all-zero map)."""
    mask = _check_mask(saliency, mask)
    sal = np.clip(np.nan_to_num(np.asarray(saliency, dtype=np.float64)), 0, None)
    total = sal.sum()
    return float(sal[mask].sum() / total) if total > 0 else 0.0


__all__ = ['above_half_max', 'effective_area', 'mask_iou', 'energy_in_mask']
