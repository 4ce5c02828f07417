"""Detection errors per image, with TIDE's kinds (Bolya et al., ECCV 2020).

Boxes in, labels out, no model. Each detection (highest score first, at most ``max_dets``) is a
true positive or one of TIDE's errors, tested in TIDE's order; each ground-truth object that no
detection found and no classification / localisation error covers is ``missed``. The
definitions and thresholds are TIDE's (``tidecv`` 1.0.1, ``TIDERun._eval_image``):

* matching: detections in score order take the unused same-class ground truth of highest IoU if
  that IoU >= ``fg_iou`` (0.5);
* ``localization``: highest same-class IoU in ``[bg_iou, fg_iou]``;
* ``classification``: IoU >= ``fg_iou`` with an object of another class;
* ``duplicate``: IoU >= ``fg_iou`` with a same-class object another detection already took;
* ``background``: IoU <= ``bg_iou`` (0.1) with every object (or the image has none);
* ``both``: none of these (wrong class and poorly localised);
* ``missed``: an object not matched and not the target of a classification or localisation
  error.

:mod:`mmattnvis.metrics.error_ap` turns the labels of a data set into TIDE's dAP.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..structures.boxes import box_iou

FG_IOU = 0.5
BG_IOU = 0.1
#: TIDE's error kinds, in TIDE's order (``TIDE._error_types``).
KINDS = ('classification', 'localization', 'both', 'duplicate', 'background', 'missed')
#: TIDE's short names of the kinds.
SHORT_NAMES = {'classification': 'Cls', 'localization': 'Loc', 'both': 'Both',
               'duplicate': 'Dupe', 'background': 'Bkg', 'missed': 'Miss'}
DEFINITIONS = {
    'classification': 'IoU >= fg with an object of another class: right box, wrong class',
    'localization': 'highest same-class IoU in [bg, fg]: right class, poorly localised',
    'both': 'wrong class and poorly localised (none of the other kinds)',
    'duplicate': 'IoU >= fg with a same-class object already taken by a higher-scoring box',
    'background': 'IoU <= bg with every object: a box on the background',
    'missed': 'an object no detection found (and no classification / localisation error '
              'covers)',
}
#: Why a missed object was missed, where the pre-NMS candidates tell it.
MISS_REASONS = {
    'no_candidate': 'no candidate box overlaps it with IoU >= fg',
    'low_score': 'a same-class candidate overlaps it, with a score below the threshold',
    'suppressed': 'a same-class candidate above the threshold overlaps it, but NMS (or the '
                  'per-image cap) removed it',
    'wrong_class': 'the best-scoring candidate that overlaps it has another class',
}


@dataclass
class ImageErrors:
    """The error labels of one image (indices into the inputs of :func:`label_image`).

    Attributes:
        kinds: Per detection: ``'tp'``, one of :data:`KINDS` but ``missed``, or ``'ignored'``
            (beyond ``max_dets``).
        det_gt: Per detection, the object its label refers to (matched, covered,
            duplicated, mislabelled), or -1.
        det_iou: Per detection, its highest same-class IoU with any object (TIDE's ``iou``).
        gt_status: Per object: ``'matched'``, ``'missed'``, or the kind of the error that covers
            it (``'classification'`` / ``'localization'``).
        gt_det: Per object, the detection that matched or covers it, or -1.
        order: Indices of the evaluated detections, highest score first.
        scores, labels, gt_labels: The inputs, as arrays.
        fixed: Per detection index of a classification / localisation error: the class its
            fixed data point takes, or None when TIDE suppresses it (not the best-scoring error
            of an unmatched object).
    """
    kinds: List[str]
    det_gt: List[int]
    det_iou: List[float]
    gt_status: List[str]
    gt_det: List[int]
    order: List[int]
    scores: np.ndarray
    labels: np.ndarray
    gt_labels: np.ndarray
    fixed: Dict[int, Optional[int]] = field(default_factory=dict)

    @property
    def missed(self) -> List[int]:
        """Indices of the missed objects."""
        return [g for g, s in enumerate(self.gt_status) if s == 'missed']

    def counts(self) -> Dict[str, int]:
        """Errors of each kind in this image."""
        out = {k: 0 for k in KINDS}
        for k in self.kinds:
            if k in out:
                out[k] += 1
        out['missed'] = len(self.missed)
        return out

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able per-detection and per-object labels."""
        return {'detections': [{'index': i, 'kind': k, 'gt': g, 'iou': float(u)}
                               for i, (k, g, u) in enumerate(
                                   zip(self.kinds, self.det_gt, self.det_iou))],
                'ground_truth': [{'index': g, 'status': s, 'detection': d,
                                  'label': int(self.gt_labels[g])}
                                 for g, (s, d) in enumerate(zip(self.gt_status, self.gt_det))]}


def label_image(boxes: Any, scores: Any, labels: Any, gt_boxes: Any, gt_labels: Any,
                fg_iou: float = FG_IOU, bg_iou: float = BG_IOU,
                max_dets: int = 100) -> ImageErrors:
    """TIDE's labels of one image's detections and objects.

    Args:
        boxes: ``(P, 4)`` detections, ``x1, y1, x2, y2``.
        scores: ``(P,)`` their scores.
        labels: ``(P,)`` their classes.
        gt_boxes: ``(G, 4)`` ground-truth boxes (ignored objects left out).
        gt_labels: ``(G,)`` their classes.
        fg_iou: TIDE's foreground threshold.
        bg_iou: TIDE's background threshold.
        max_dets: Detections evaluated per image (highest scores).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    gt_labels = np.asarray(gt_labels, np.int64).reshape(-1)
    n, g = len(scores), len(gt_labels)
    order = [int(i) for i in np.argsort(-scores, kind='stable')][:max_dets]
    res = ImageErrors(['ignored'] * n, [-1] * n, [0.0] * n, ['missed'] * g, [-1] * g, order,
                      scores, labels, gt_labels)
    if not order:
        return res
    if g == 0:
        for i in order:
            res.kinds[i] = 'background'
        return res
    iou = box_iou(boxes[order], gt_boxes)  # (K, G), rows in score order
    same = labels[order][:, None] == gt_labels[None, :]
    cls_iou = iou * same
    buffer = cls_iou.copy()
    used = np.zeros(g, bool)
    for r, i in enumerate(order):
        j = int(np.argmax(buffer[r]))
        res.det_iou[i] = float(cls_iou[r].max())
        if buffer[r, j] >= fg_iou:
            res.kinds[i], res.det_gt[i] = 'tp', j
            res.gt_status[j], res.gt_det[j] = 'matched', i
            used[j] = True
            buffer[:, j] = 0
    noncls_iou = iou * ~same
    used_cls = cls_iou * used[None, :]
    best: Dict[int, int] = {}  # unmatched object -> best-scoring error that covers it
    covered = np.zeros(g, bool)
    for r, i in enumerate(order):
        if res.kinds[i] == 'tp':
            continue
        j = int(np.argmax(cls_iou[r]))
        if bg_iou <= cls_iou[r, j] <= fg_iou:
            kind = 'localization'
        else:
            j = int(np.argmax(noncls_iou[r]))
            if noncls_iou[r, j] >= fg_iou:
                kind = 'classification'
            else:
                j = int(np.argmax(used_cls[r]))
                if used_cls[r, j] >= fg_iou:
                    kind = 'duplicate'
                else:
                    j = int(np.argmax(iou[r]))
                    kind = 'background' if iou[r, j] <= bg_iou else 'both'
                    j = -1 if kind == 'background' else j
        res.kinds[i] = kind
        res.det_gt[i] = j
        if kind in ('classification', 'localization'):
            res.fixed[i] = None
            if not used[j]:
                covered[j] = True
                if j not in best or scores[best[j]] < scores[i]:
                    best[j] = i
    for j, i in best.items():
        res.fixed[i] = int(gt_labels[j])
    for j in range(g):
        if covered[j]:
            i = best[j]
            res.gt_status[j], res.gt_det[j] = res.kinds[i], i
    return res


def miss_reason(gt_box: Any, gt_label: int, cand_boxes: Any, cand_scores: Any,
                cand_labels: Any, score_thr: float,
                fg_iou: float = FG_IOU) -> Dict[str, Any]:
    """Why a missed object was missed, from the model's candidates before NMS.

    Args:
        gt_box: The object's box.
        gt_label: Its class.
        cand_boxes: ``(C, 4)`` candidates before NMS (anchors / points / queries with their
            decoded boxes), any score.
        cand_scores: ``(C,)`` their scores.
        cand_labels: ``(C,)`` their classes.
        score_thr: The score threshold of the labelled detections.
        fg_iou: Overlap a candidate needs to count.

    Returns:
        ``{'reason': one of MISS_REASONS, 'candidate': index of the best-matching candidate
        (highest IoU among the same-class ones, else among all; -1 without candidates),
        'candidate_iou', 'candidate_score', 'candidate_label'}``.
    """
    boxes = np.asarray(cand_boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(cand_scores, np.float64).reshape(-1)
    labels = np.asarray(cand_labels, np.int64).reshape(-1)
    out: Dict[str, Any] = {'reason': 'no_candidate', 'candidate': -1, 'candidate_iou': 0.0,
                           'candidate_score': 0.0, 'candidate_label': -1}
    if len(scores) == 0:
        return out
    iou = box_iou(np.asarray(gt_box, np.float64).reshape(4), boxes)
    same = labels == int(gt_label)
    pool = np.flatnonzero(same) if same.any() else np.arange(len(scores))
    # highest IoU, ties to the higher score
    best = int(pool[np.lexsort((-scores[pool], -iou[pool]))[0]])
    out.update(candidate=best, candidate_iou=float(iou[best]),
               candidate_score=float(scores[best]), candidate_label=int(labels[best]))
    near = iou >= fg_iou
    if not near.any():
        return out
    same_top = float(scores[near & same].max()) if (near & same).any() else -1.0
    other_top = float(scores[near & ~same].max()) if (near & ~same).any() else -1.0
    if same_top > score_thr:
        out['reason'] = 'suppressed'
    elif other_top > same_top:
        out['reason'] = 'wrong_class'
    else:
        out['reason'] = 'low_score'
    return out


def error_info(fg_iou: float = FG_IOU, bg_iou: float = BG_IOU,
               score_thr: Optional[float] = None) -> Dict[str, Any]:
    """The names, thresholds and definitions stored with the labels of a record."""
    return {'source': 'TIDE (Bolya et al., ECCV 2020), tidecv 1.0.1 definitions',
            'kinds': list(KINDS), 'short_names': dict(SHORT_NAMES),
            'thresholds': {'foreground_iou': fg_iou, 'background_iou': bg_iou,
                           'score': score_thr},
            'definitions': dict(DEFINITIONS), 'miss_reasons': dict(MISS_REASONS)}


def count_errors(images: Sequence[ImageErrors]) -> Dict[str, int]:
    """Errors of each kind over a data set."""
    total = {k: 0 for k in KINDS}
    for im in images:
        for k, v in im.counts().items():
            total[k] += v
    return total


__all__ = ['FG_IOU', 'BG_IOU', 'KINDS', 'SHORT_NAMES', 'DEFINITIONS', 'MISS_REASONS',
           'ImageErrors', 'label_image', 'miss_reason', 'error_info', 'count_errors']
