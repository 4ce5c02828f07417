"""A detector's candidate boxes before NMS, through its own ``predict`` (missed-object reasons).

:class:`PreNMSCandidates` swaps the detection head's ``test_cfg`` for a copy that keeps every
candidate the head scores: NMS IoU threshold 1.0 (nothing suppressed), score threshold 0 and no
per-image cap (``max_per_img``: every query x class of a DETR-family head, else 10^6). ``nms_pre``
(the per-level top-k before NMS) stays: it is part of how the model picks its candidates. The
original ``test_cfg`` object is put back on exit, also on exceptions.

Relies on: MMDet 3.x dense heads and MMYOLO heads reading ``self.test_cfg`` (``score_thr``,
``nms.iou_threshold``, ``max_per_img``) in ``predict_by_feat`` when no ``cfg`` is passed, and
DETR heads reading ``test_cfg.max_per_img`` for their top-k.
"""
import copy
from typing import Any, List, Tuple

from torch import nn

#: mmdet versions this was written and tested for (with mmyolo 0.6.0, see ``FINGERPRINTS``).
TESTED_VERSIONS = ('3.3.0', )
TESTED_MMYOLO_VERSIONS = ('0.6.0', )

#: sha1 of the code that reads the swapped ``test_cfg`` (``tests/test_compat.py``).
FINGERPRINTS = {
    'mmdet.models.dense_heads.base_dense_head.BaseDenseHead._predict_by_feat_single':
        '0db81a6088a6ac306db94072f18ad09d38a9710b',
    'mmdet.models.dense_heads.base_dense_head.BaseDenseHead._bbox_post_process':
        '07e63f8fbd8fcc4c80fd276a91f7019dc30c7320',
    'mmdet.models.dense_heads.detr_head.DETRHead._predict_by_feat_single':
        '0559df404910f5ed9f39a21e3d428cf0f07de34b',
    'mmyolo.models.dense_heads.yolov5_head.YOLOv5Head.predict_by_feat':
        'f5fd075e22aef2b818ec0233127392a3070ec9cf',
}


def _heads(model: nn.Module) -> List[nn.Module]:
    head = getattr(model, 'bbox_head', None)
    return [head] if head is not None and getattr(head, 'test_cfg', None) is not None else []


def _candidate_cfg(model: nn.Module, head: nn.Module, cfg: Any) -> Any:
    new = copy.deepcopy(cfg)
    if 'nms' in new and new.nms is not None:
        new.nms['iou_threshold'] = 1.0
    if 'score_thr' in new:
        new['score_thr'] = 0.0
    queries = getattr(model, 'num_queries', None)
    if queries is not None:
        sigmoid = bool(getattr(getattr(head, 'loss_cls', None), 'use_sigmoid', False))
        new['max_per_img'] = int(queries) * (int(head.cls_out_channels)  # type: ignore[arg-type]
                                             if sigmoid else 1)
    else:
        new['max_per_img'] = 10**6
    return new


class PreNMSCandidates:
    """Context manager: while active, ``model.predict`` returns every candidate of its head.

    Args:
        model: An MMDet / MMYOLO detector (two-stage models: the RPN is left as it is).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._saved: List[Tuple[nn.Module, Any]] = []

    @property
    def supported(self) -> bool:
        return bool(_heads(self.model))

    def __enter__(self) -> 'PreNMSCandidates':
        for head in _heads(self.model):
            self._saved.append((head, head.test_cfg))
            head.test_cfg = _candidate_cfg(self.model, head, head.test_cfg)
        return self

    def __exit__(self, *exc: Any) -> None:
        for head, cfg in self._saved:
            head.test_cfg = cfg
        self._saved = []


__all__ = ['TESTED_VERSIONS', 'PreNMSCandidates']
