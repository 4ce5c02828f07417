"""MMYOLO YOLOv5-style post-processing that decodes only the priors it keeps (D-RISE's copy).

``YOLOv5Head.predict_by_feat`` flattens, concatenates and applies ``sigmoid`` to the class scores
and boxes of *every* prior (25,200 x 80 scores for a 640 px COCO input) and only then drops the
priors whose objectness is at or below ``score_thr``. :func:`predict_by_feat_kept` selects those
priors first, from the objectness alone, and flattens, activates and decodes just them; the rest
(score product, ``filter_scores_and_topk``, rescaling, the head's ``_bbox_post_process``, clamping)
is the same, in the same order, so the predictions are the same. Heads without objectness,
``score_thr <= 0`` and ``yolox_style`` run the original method.

:func:`keep_only_kept_priors` gives it to the YOLOv5-style heads of a model *instance* (used on
D-RISE's inference copy only, :mod:`mmattnvis.methods.drise_fast`, which is checked against the
model before use).

Relies on: ``YOLOv5Head.predict_by_feat`` (its prior cache ``featmap_sizes`` / ``mlvl_priors``,
the flattening order level -> cell -> base prior, the objectness filter and the per-image tail)
and ``YOLOv5BBoxCoder.decode`` being elementwise per prior.
"""
import copy
import types
from typing import Any, List, Optional

import torch
from torch import nn

#: mmyolo versions this patch was written and tested for.
TESTED_VERSIONS = ('0.6.0', )
#: (qualified name, sha1 of ``inspect.getsource``) of what the patch re-implements.
FINGERPRINTS = {
    'mmyolo.models.dense_heads.yolov5_head.YOLOv5Head.predict_by_feat':
    'f5fd075e22aef2b818ec0233127392a3070ec9cf',
    'mmyolo.models.task_modules.coders.yolov5_bbox_coder.YOLOv5BBoxCoder.decode':
    'e30c316556c7ef3cd209bd5d52631142f60c4c02',
}


def _rows(maps: List[torch.Tensor], image: int, keep: torch.Tensor, offsets: List[int],
          width: int, base: int) -> torch.Tensor:
    """The rows ``keep`` (flat prior indices, ascending) of image ``image``'s per-level maps
    ``(base * width, H, W)`` as ``predict_by_feat`` flattens them (``(H * W * base, width)``:
    index ``cell * base + prior``), gathered without flattening the whole map."""
    parts = []
    for level, m in enumerate(maps):
        lo, hi = offsets[level], offsets[level + 1]
        sel = keep[(keep >= lo) & (keep < hi)] - lo
        cells = m[image].reshape(base, width, -1)  # (prior, attribute, cell)
        parts.append(cells[sel % base, :, torch.div(sel, base, rounding_mode='floor')])
    return torch.cat(parts)


def predict_by_feat_kept(head: Any, cls_scores: List[torch.Tensor],
                         bbox_preds: List[torch.Tensor],
                         objectnesses: Optional[List[torch.Tensor]] = None,
                         batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                         rescale: bool = True, with_nms: bool = True) -> list:
    """``YOLOv5Head.predict_by_feat`` that activates and decodes only the priors whose objectness
    is above ``score_thr``."""
    from mmdet.models.utils import filter_scores_and_topk
    from mmengine.structures import InstanceData
    from mmyolo.models.dense_heads.yolov5_head import YOLOv5Head
    cfg = copy.deepcopy(head.test_cfg if cfg is None else cfg)
    score_thr = cfg.get('score_thr', -1)
    if objectnesses is None or score_thr <= 0 or cfg.get('yolox_style', False):
        return YOLOv5Head.predict_by_feat(head, cls_scores, bbox_preds, objectnesses,
                                          batch_img_metas, cfg, rescale, with_nms)
    assert batch_img_metas is not None
    cfg.multi_label = cfg.multi_label and head.num_classes > 1
    sizes = [c.shape[2:] for c in cls_scores]
    if sizes != head.featmap_sizes:  # the head's own prior cache, kept as it keeps it
        head.mlvl_priors = head.prior_generator.grid_priors(
            sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device)
        head.featmap_sizes = sizes
    base, priors = head.num_base_priors, torch.cat(head.mlvl_priors)
    counts = [s.numel() * base for s in sizes]  # priors per level
    strides = torch.cat([priors.new_full((n, ), stride)
                         for n, stride in zip(counts, head.featmap_strides)])
    offsets = [0]
    for n in counts:
        offsets.append(offsets[-1] + n)
    objectness = torch.cat([o.permute(0, 2, 3, 1).reshape(len(batch_img_metas), -1)
                            for o in objectnesses], dim=1).sigmoid()
    results_list = []
    for i, meta in enumerate(batch_img_metas):
        keep = torch.nonzero(objectness[i] > score_thr).squeeze(1)
        scores = _rows(cls_scores, i, keep, offsets, head.num_classes, base).sigmoid()
        bboxes = head.bbox_coder.decode(priors[keep], _rows(bbox_preds, i, keep, offsets, 4, base),
                                        strides[keep])
        scores *= objectness[i, keep][:, None]
        if scores.shape[0] == 0:
            empty = InstanceData()
            empty.bboxes, empty.scores, empty.labels = bboxes, scores[:, 0], scores[:, 0].int()
            results_list.append(empty)
            continue
        nms_pre = cfg.get('nms_pre', 100000)
        if cfg.multi_label:
            scores, labels, keep_idxs, _ = filter_scores_and_topk(scores, score_thr, nms_pre)
        else:
            scores, labels = scores.max(1, keepdim=True)
            scores, _, keep_idxs, out = filter_scores_and_topk(
                scores, score_thr, nms_pre, results=dict(labels=labels[:, 0]))
            labels = out['labels']
        results = InstanceData(scores=scores, labels=labels, bboxes=bboxes[keep_idxs])
        if rescale:
            pad = meta.get('pad_param')
            if pad is not None:
                results.bboxes -= results.bboxes.new_tensor([pad[2], pad[0], pad[2], pad[0]])
            results.bboxes /= results.bboxes.new_tensor(meta['scale_factor']).repeat((1, 2))
        results = head._bbox_post_process(results=results, cfg=cfg, rescale=False,
                                          with_nms=with_nms, img_meta=meta)
        results.bboxes[:, 0::2].clamp_(0, meta['ori_shape'][1])
        results.bboxes[:, 1::2].clamp_(0, meta['ori_shape'][0])
        results_list.append(results)
    return results_list


def keep_only_kept_priors(model: nn.Module) -> int:
    """Give every head of ``model`` that uses ``YOLOv5Head.predict_by_feat`` (as its class's
    method) :func:`predict_by_feat_kept`, as an attribute of the head instance. Returns how many
    heads got it (0 without MMYOLO)."""
    try:
        from mmyolo.models.dense_heads.yolov5_head import YOLOv5Head
    except ImportError:
        return 0
    from . import heads_using
    heads = heads_using(model, YOLOv5Head, 'predict_by_feat')
    for h in heads:
        h.predict_by_feat = types.MethodType(predict_by_feat_kept, h)
    return len(heads)


__all__ = ['predict_by_feat_kept', 'keep_only_kept_priors', 'TESTED_VERSIONS', 'FINGERPRINTS']
