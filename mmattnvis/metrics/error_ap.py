"""TIDE's dAP: how much AP each error kind costs (Bolya et al., ECCV 2020).

From the per-image labels of :func:`~mmattnvis.metrics.errors.label_image`: AP at the
foreground IoU (COCO's 101-point interpolation, per class, mean over the classes that have
objects or detections), then, per kind, the AP with that kind's errors fixed by TIDE's oracle
(``tidecv`` 1.0.1, ``TIDERun.fix_errors``), non-progressive:

* ``classification`` / ``localization``: the best-scoring error covering an unmatched object
  becomes a true positive (of the object's class); the other errors of that kind are removed;
* ``duplicate``, ``background``, ``both``: the false positive is removed;
* ``missed``: the object is removed from the ground truth.

``dAP = max(AP_fixed - AP, 0)``, in AP points (0-100) as TIDE prints them. Also TIDE's two
special errors: ``false_positive`` (every false positive scored 0) and ``false_negative``
(every unmatched object removed).
"""
import operator
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import KINDS, ImageErrors

#: A data point: (error kind or 'tp', class, id, score, correct).
_Point = Tuple[str, int, int, float, bool]


def average_precision(scores: Sequence[float], correct: Sequence[bool],
                      num_gt: int) -> float:
    """COCO-style AP (101 recall points, precision made monotone), in points (0-100); 0
    without objects. Ties keep the given order (a stable sort), as TIDE does."""
    if num_gt == 0 or len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, np.float64), kind='stable')
    hits = np.asarray(correct, bool)[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / num_gt
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.arange(101) / 100, side='left')
    curve = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(curve.sum() / 101 * 100)


class _ClassedAP:
    """Per class: data points in push order and the number of objects."""

    def __init__(self) -> None:
        self.points: Dict[int, List[Tuple[float, bool]]] = OrderedDict()
        self.num_gt: Dict[int, int] = OrderedDict()

    def _touch(self, c: int) -> None:
        if c not in self.points:
            self.points[c] = []
            self.num_gt[c] = 0

    def push(self, c: int, score: float, correct: bool) -> None:
        self._touch(c)
        self.points[c].append((score, correct))

    def add_gt(self, c: int, n: int) -> None:
        self._touch(c)
        self.num_gt[c] += n

    def per_class(self) -> Dict[int, float]:
        """AP of every class that has objects or detections."""
        return {c: average_precision([s for s, _ in p], [t for _, t in p], self.num_gt[c])
                for c, p in self.points.items() if p or self.num_gt[c]}

    def mean(self) -> float:
        aps = list(self.per_class().values())
        return float(sum(aps) / len(aps)) if aps else 0.0


@dataclass
class ErrorSummary:
    """Data-set numbers of an error analysis.

    Attributes:
        ap: mAP at the foreground IoU (points).
        counts: Errors per kind.
        dap: dAP per kind (points), plus ``false_positive`` / ``false_negative``.
        per_class: ``{class: {'ap', 'counts': {kind: n}, 'dap': {kind: points}, 'objects'}}``.
    """
    ap: float
    counts: Dict[str, int]
    dap: Dict[str, float]
    per_class: Dict[int, dict]

    def to_dict(self, classes: Optional[Sequence[str]] = None) -> dict:
        def name(c: int) -> str:
            return classes[c] if classes is not None and 0 <= c < len(classes) else str(c)
        return {'ap': self.ap, 'counts': dict(self.counts), 'dap': dict(self.dap),
                'per_class': [dict(v, label=int(c), name=name(c))
                              for c, v in sorted(self.per_class.items())]}


def _collect(images: Sequence[ImageErrors]):
    """TIDE's bookkeeping: the AP data, the errors in TIDE's order and the unmatched objects."""
    base = _ClassedAP()
    errors: List[Tuple[str, int, int, float, Optional[int], int]] = []  # kind, cls, id, ...
    unmatched: Dict[int, int] = {}
    correct: List[Tuple[int, int, float]] = []
    uid = 0
    for im in images:
        ids = {}
        for g, c in enumerate(im.gt_labels):
            base.add_gt(int(c), 1)
        for i in im.order:
            ids[i] = uid
            uid += 1
            c, s, k = int(im.labels[i]), float(im.scores[i]), im.kinds[i]
            base.push(c, s, k == 'tp')
            if k == 'tp':
                correct.append((c, ids[i], s))
            else:
                errors.append((k, c, ids[i], s, im.fixed.get(i), -1))
        for g, st in enumerate(im.gt_status):
            if st == 'matched':
                continue
            c = int(im.gt_labels[g])
            unmatched[c] = unmatched.get(c, 0) + 1
            if st == 'missed':
                errors.append(('missed', c, -1, 0.0, None, -1))
    return base, errors, unmatched, correct


def _fix(base: _ClassedAP, errors, correct, condition: Callable[[str], bool],
         transform=None, gt_minus: Optional[Dict[int, int]] = None) -> _ClassedAP:
    gt_pos = dict(base.num_gt)
    out = _ClassedAP()
    for kind, c, _, score, fixed_cls, _ in errors:
        point: Optional[Tuple[int, float, bool]] = None if kind == 'missed' else (c, score, False)
        if condition(kind):
            if kind == 'missed':
                gt_pos[c] -= 1
                point = None
            elif kind in ('classification', 'localization') and fixed_cls is not None:
                point = (fixed_cls, score, True)
            else:
                point = None
        if point is not None:
            s, t = point[1], point[2]
            if transform is not None:
                s, t = transform(s, t)
            out.push(point[0], s, t)
    by_class: Dict[int, List[Tuple[float, bool]]] = {}
    for c, _, s in correct:
        by_class.setdefault(c, []).append((s, True))
    for c in gt_pos:
        for s, t in by_class.get(c, []):
            if transform is not None:
                s, t = transform(s, t)
            out.push(c, s, t)
    for c, v in gt_pos.items():
        out.add_gt(c, v - (gt_minus or {}).get(c, 0))
    return out


def summarize_errors(images: Sequence[ImageErrors]) -> ErrorSummary:
    """Counts, AP and dAP per kind (and per class) over a data set's labelled images."""
    base, errors, unmatched, correct = _collect(images)
    ap_cls = base.per_class()
    ap = base.mean()
    counts = {k: sum(1 for e in errors if e[0] == k) for k in KINDS}
    dap: Dict[str, float] = {}
    dap_cls: Dict[str, Dict[int, float]] = {}
    for kind in KINDS:
        fixed = _fix(base, errors, correct, partial(operator.eq, kind))
        dap[kind] = max(fixed.mean() - ap, 0.0)
        fixed_cls = fixed.per_class()
        dap_cls[kind] = {c: fixed_cls.get(c, 0.0) - ap_cls.get(c, 0.0)
                         for c in set(ap_cls) | set(fixed_cls)}
    dap['false_positive'] = _fix(base, errors, correct, lambda k: False,
                                 transform=lambda s, t: (1.0, True) if t else (0.0, False)
                                 ).mean() - ap
    dap['false_negative'] = _fix(base, errors, correct, lambda k: False,
                                 gt_minus=unmatched).mean() - ap
    per_class: Dict[int, dict] = {}
    for c in sorted(set(base.points)):
        per_class[c] = {'ap': ap_cls.get(c, 0.0), 'objects': base.num_gt[c],
                        'counts': {k: 0 for k in KINDS},
                        'dap': {k: max(dap_cls[k].get(c, 0.0), 0.0) for k in KINDS}}
    for kind, c, *_ in errors:
        per_class[c]['counts'][kind] += 1
    return ErrorSummary(ap, counts, dap, per_class)


__all__ = ['average_precision', 'ErrorSummary', 'summarize_errors']
