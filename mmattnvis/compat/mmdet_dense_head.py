"""MMDet dense-head post-processing that keeps the autograd graph (Grad-CAM family, ODAM).

``BaseDenseHead.predict_by_feat`` detaches each image's per-level outputs before decoding, which
cuts the scores and boxes off from the network. :class:`DenseHeadsKeepGraph` gives every dense
head that uses that base implementation a copy without the ``detach()`` (as an attribute of the
head *instance*, removed on exit; the class and other heads are untouched). The copy repeats the
base method's per-image selection and hands the tensors to the head's own
``_predict_by_feat_single``.

Relies on: ``BaseDenseHead.predict_by_feat`` (its selection of the per-image, per-level outputs
and its call of ``_predict_by_feat_single``) and ``head.prior_generator.grid_priors``.
"""
import types
from typing import Any, List, Optional

from torch import nn

#: mmdet versions this patch was written and tested for.
TESTED_VERSIONS = ('3.3.0', )
#: (qualified name, sha1 of ``inspect.getsource``) of what the patch re-implements.
FINGERPRINTS = {
    'mmdet.models.dense_heads.base_dense_head.BaseDenseHead.predict_by_feat':
    '6c703afb4d129b81ff6ff765bef6e24ad43cd2d2',
}


def predict_by_feat_keep_graph(head: Any, cls_scores: list, bbox_preds: list,
                               score_factors: Optional[list] = None,
                               batch_img_metas: Optional[List[dict]] = None, cfg: Any = None,
                               rescale: bool = False, with_nms: bool = True) -> list:
    """``BaseDenseHead.predict_by_feat`` without its ``detach()`` of the head outputs."""
    assert batch_img_metas is not None
    sizes = [c.shape[-2:] for c in cls_scores]
    priors = head.prior_generator.grid_priors(sizes, dtype=cls_scores[0].dtype,
                                              device=cls_scores[0].device)
    results = []
    for i, meta in enumerate(batch_img_metas):
        factors = ([f[i] for f in score_factors] if score_factors is not None else
                   [None] * len(cls_scores))
        results.append(head._predict_by_feat_single(
            [c[i] for c in cls_scores], [b[i] for b in bbox_preds], factors, priors, meta,
            cfg, rescale=rescale, with_nms=with_nms))
    return results


class DenseHeadsKeepGraph:
    """Context manager: every dense head of ``model`` that uses ``BaseDenseHead.predict_by_feat``
    gets :func:`predict_by_feat_keep_graph` while active. The heads are found once; the context
    may be entered for every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        from mmdet.models.dense_heads.base_dense_head import BaseDenseHead

        from . import heads_using
        self.heads = heads_using(model, BaseDenseHead, 'predict_by_feat')

    def __enter__(self) -> 'DenseHeadsKeepGraph':
        for h in self.heads:
            h.predict_by_feat = types.MethodType(predict_by_feat_keep_graph, h)
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.heads:
            vars(h).pop('predict_by_feat', None)
