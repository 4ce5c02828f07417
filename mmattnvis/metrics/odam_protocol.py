"""Faithfulness by the ODAM protocol (Zhao et al., ICLR 2023, Sec. 5).

* **Pointing game** against the ground-truth box, the map's maximum *strictly* inside it
  (:func:`pointing_game_strict`); **energy pointing game**: the share of the map's mass inside
  the box (:func:`~.faithfulness.energy_pointing_game`).
* **Deletion / insertion**: pixels replaced in the map's order (as in
  :func:`~.faithfulness.perturbation_images`); at each step the detection's score is the best
  score of the same class among the predictions overlapping the explained box with IoU > 0.5
  (:func:`odam_score`), divided by that score on the unperturbed image; AUC over the replaced
  fraction (:func:`odam_perturbation_auc`).
* **ODI**, object discrimination index: the map's energy on the *other* objects of the image
  over its energy on all objects (:func:`object_discrimination_index`; lower is better: the
  map is about its own instance).

Plain arrays in original-image pixels; the detector is reached through a ``predict`` callable.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..render.geometry import box_slices
from ..structures.boxes import BoxLike, box_iou
from .faithfulness import auc, perturbation_images

#: Predictions of one image: ``(boxes (P, 4), scores (P,), labels (P,))``.
Preds = Tuple[np.ndarray, np.ndarray, np.ndarray]


def pointing_game_strict(saliency: np.ndarray, box: BoxLike) -> bool:
    """Whether a maximum of the map lies strictly inside ``box`` (pixel centres, boundary
    excluded). A flat or non-finite map points nowhere."""
    sal = np.asarray(saliency, dtype=np.float64)
    if not np.isfinite(sal).all() or sal.max() <= sal.min():
        return False
    rows, cols = np.nonzero(sal == sal.max())
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = cols + 0.5, rows + 0.5
    return bool(((cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)).any())


def odam_score(box: BoxLike, label: int, pred_boxes: np.ndarray,
               pred_scores: np.ndarray, pred_labels: np.ndarray,
               iou_thr: float = 0.5) -> float:
    """Best score among predictions of class ``label`` with IoU > ``iou_thr`` with ``box``
    (0 when there is none)."""
    labels = np.asarray(pred_labels).reshape(-1)
    scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    same = labels == int(label)
    if not same.any():
        return 0.0
    ious = box_iou(box, np.asarray(pred_boxes).reshape(-1, 4)[same])
    keep = ious > iou_thr
    return float(scores[same][keep].max()) if keep.any() else 0.0


def odam_perturbation_auc(image: np.ndarray, saliency: np.ndarray, box: BoxLike,
                          label: int, predict: Callable[[List[np.ndarray]], List[Preds]],
                          mode: str = 'deletion', steps: int = 20,
                          baseline: Optional[np.ndarray] = None,
                          rng: Optional[np.random.Generator] = None,
                          iou_thr: float = 0.5) -> Tuple[float, np.ndarray]:
    """ODAM deletion or insertion AUC of one detection.

    Args:
        predict: Images -> predictions per image; called once with the ``steps + 1`` curve
            images plus the unperturbed image (last), so it can batch them.

    Returns:
        ``(auc, curve)``, the curve normalised by the score on the unperturbed image (all zeros
        when the detection is not found there).
    """
    fractions, images = perturbation_images(image, saliency, mode, steps, baseline, rng)
    preds = list(predict(images + [image]))
    if len(preds) != len(images) + 1:
        raise ValueError(f'predict returned {len(preds)} results for {len(images) + 1} images')
    scores = np.array([odam_score(box, label, *p, iou_thr=iou_thr) for p in preds])
    start = scores[-1]
    curve = scores[:-1] / start if start > 0 else np.zeros(len(images))
    return auc(fractions, curve), curve


def object_discrimination_index(saliency: np.ndarray, box: BoxLike,
                                other_boxes: Sequence[BoxLike]) -> Optional[float]:
    """Energy of the map on the other objects over its energy on all objects.

    Pixels are counted once: "all objects" is the union of ``box`` and ``other_boxes``,
    "other objects" that union minus ``box``. ``None`` without other objects; 0 for a map with
    no energy on any object.
    """
    if len(other_boxes) == 0:
        return None
    sal = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    own = np.zeros(sal.shape, bool)
    rs, cs = box_slices(box, sal.shape)
    own[rs, cs] = True
    others = np.zeros(sal.shape, bool)
    for b in other_boxes:
        rs, cs = box_slices(b, sal.shape)
        others[rs, cs] = True
    others &= ~own
    total = sal[own | others].sum()
    return float(sal[others].sum() / total) if total > 0 else 0.0


__all__ = ['pointing_game_strict', 'odam_score', 'odam_perturbation_auc',
           'object_discrimination_index']
