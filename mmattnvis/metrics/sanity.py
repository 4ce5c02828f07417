"""Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

A map that stays the same when the detector's weights are replaced by random ones explains the
architecture (or the input), not what the trained model uses. The check randomises the head, then
also the neck, then also the backbone (cascading, top down; the model side is
:mod:`mmattnvis.apis.randomisation`) and follows the Spearman rank correlation between each
recomputed map and the original one. It must fall.

**Pass criterion**: the correlation after full randomisation is below :data:`SANITY_THRESHOLD`
(0.5). Why 0.5: two independent random maps correlate near 0 and an explainer blind to the weights
(an edge map of the input, a fixed blob at the box) correlates near 1; in Adebayo et al.'s
cascading-randomisation experiment the maps they pass (the plain gradient, Grad-CAM) drop towards
0 once the top layers are random, while the one they fail (Guided Backprop) stays high. 0.5 is
the midpoint: a map whose ranking is still more than half the original's after all trained
weights are gone is mostly not about the weights. Ranks are compared on a common grid of at most
:data:`SANITY_GRID` cells on the longer side (area-averaged), so that upsampling artefacts and
pixel-level ties don't dominate.
"""
from typing import Dict, Optional

import cv2
import numpy as np

#: Correlation after full randomisation below which the check is passed.
SANITY_THRESHOLD = 0.5
#: Longer side of the grid the maps are compared on.
SANITY_GRID = 64


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of ``x`` (1-D), ties given their average rank."""
    order = np.argsort(x, kind='mergesort')
    sorted_x = x[order]
    ranks = np.empty(x.shape[0], np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.shape[0]]
    avg = (starts + ends - 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _grid(saliency: np.ndarray, shape) -> np.ndarray:
    sal: np.ndarray = np.nan_to_num(np.asarray(saliency, dtype=np.float32))
    if sal.shape != tuple(shape):
        sal = cv2.resize(sal, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return sal.astype(np.float64).ravel()


def spearman(a: np.ndarray, b: np.ndarray, grid: int = SANITY_GRID) -> float:
    """Spearman rank correlation of two ``(H, W)`` maps of the same image.

    Both are area-resized to at most ``grid`` cells on the longer side first. A flat map has no
    ranking to share: the correlation is 0 then (not NaN).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f'maps {a.shape[:2]} and {b.shape[:2]} differ in size')
    h, w = a.shape[:2]
    scale = min(1.0, grid / max(h, w))
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    ra, rb = _ranks(_grid(a, shape)), _ranks(_grid(b, shape))
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def sanity_passed(correlations: Dict[str, float],
                  threshold: float = SANITY_THRESHOLD) -> Optional[bool]:
    """Whether the last stage's correlation (full randomisation) is below ``threshold``;
    ``None`` without any stage. A ``'flat'`` entry (see
    :func:`mmattnvis.apis.randomisation.sanity_correlations`) is not a stage and is ignored."""
    rhos = [v for k, v in correlations.items() if k != 'flat']
    if not rhos:
        return None
    return bool(rhos[-1] < threshold)


__all__ = ['SANITY_THRESHOLD', 'SANITY_GRID', 'spearman', 'sanity_passed']
