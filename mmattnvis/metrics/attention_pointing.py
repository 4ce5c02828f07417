"""Does a DETR-family query look at its own object? The pointing game of the last decoder
layer's cross-attention (head-averaged) against the query's predicted box."""
from typing import List, Tuple

import numpy as np

from ..render.geometry import ImageGeometry, align_to_image
from .faithfulness import pointing_game


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
    from ..apis.attention_runner import AttentionOptions, run_attention
    from ..capture.attention import attention_kind, find_attention_modules
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
            aligned = align_to_image(np.asarray(rows[0].data, np.float32), geom)
            out.append((det, pointing_game(aligned, det.bbox)))
    return out


__all__ = ['cross_attention_pointing']
