"""Does a DETR-family query look at its own object? Runs the model and scores the last decoder
layer's head-averaged cross-attention of every kept query with the pointing game
(:func:`mmattnvis.metrics.attention_pointing.attention_pointing`)."""
from typing import List, Tuple

from ..capture.attention import attention_kind, find_attention_modules
from ..metrics.attention_pointing import attention_pointing
from ..structures.geometry import ImageGeometry
from .attention_runner import AttentionOptions, run_attention


def cross_attention_pointing(model, data, score_thr: float = 0.3,
                             max_queries: int = 100) -> List[Tuple[object, bool]]:
    """For every detection above ``score_thr`` of every image of a prepared batch: whether the
    head-averaged cross-attention of its query in the last decoder layer peaks inside its box.

    Dense cross-attention (DETR, Conditional / DAB-DETR) is the attention over the key grid;
    deformable attention (Deformable DETR, DINO) is the sampling weights splatted on the finest
    level's grid. Either is aligned with the original image before taking the maximum.

    Returns:
        ``[(detection, hit)]`` over the batch.
    """
    cross = {attention_kind(m) for (p, _), (_, m) in find_attention_modules(model).items()
             if p == 'decoder_cross'}
    mode = 'deformable' if 'deformable' in cross else 'decoder'
    options = AttentionOptions(mode=mode, layers=[-1], head_fusion='mean', score_thr=score_thr,
                               max_queries=max_queries)
    samples, _, columns = run_attention(model, data, options)
    out = []
    for sample, cols in zip(samples, columns):
        geom = ImageGeometry.from_metainfo(sample.metainfo)
        for det, rows in cols:
            out.append((det, attention_pointing(rows[0].data, geom, det.bbox)))
    return out


__all__ = ['cross_attention_pointing']
