"""The titles and notes of attention figures, in the words their panels use (``options``:
an :class:`~.attention_runner.AttentionOptions`)."""
from typing import Any

from ..methods.attention import DIRECTION_TITLES


def figure_title(options: Any, name: str, deformable: bool = False) -> str:
    """The figure's title: the method, its head fusion and, for points, the direction."""
    direction = DIRECTION_TITLES['from' if deformable else options.point_direction()]
    what = {
        'decoder': 'decoder cross-attention per query',
        'encoder': (f'encoder deformable sampling points, {direction}' if deformable else
                    f'encoder self-attention, {direction}'),
        'deformable': 'decoder deformable sampling points per query',
        'relevance': 'relevance (Chefer et al.) | raw attention (last layer, head mean) | '
                     'rollout (Chefer et al.)',
        'rollout': _rollout_title(options, direction),
    }[options.mode]
    if options.mode == 'relevance' or options.mode == 'rollout':
        return f'{name}: {what}'
    return f'{name}: {what}, {heads_text(options, deformable or options.mode == "deformable")}'


def heads_text(options: Any, points: bool = False) -> str:
    """Which heads a figure shows, in the words its panels use: sampling points are drawn for
    every selected head together (``all heads`` / ``heads 0,3``) or one panel per head; dense
    maps fuse the heads (``heads: mean``)."""
    chosen = ','.join(str(h) for h in options.heads) if options.heads else ''
    if options.head_fusion == 'none':
        return f'one row per head{" of " + chosen if chosen else ""}'
    if points:
        if options.heads and len(options.heads) == 1:
            return f'head {chosen}'
        return f'heads {chosen} together' if chosen else 'all heads'
    return f'heads{" " + chosen if chosen else ""}: {options.head_fusion}'


def _rollout_title(options: Any, direction: str) -> str:
    kind = ('gradient rollout (grad x attn, heads: positive mean)' if options.gradient else
            f'attention rollout (heads: {options.head_fusion})')
    where = (f'at points, {direction}' if options.points else
             f'at box centres, {direction}')
    discard = f', discard ratio {options.discard_ratio:g}' if options.discard_ratio else ''
    return f'encoder {kind}{discard}, {where}'


def no_detection_note(score_thr: float) -> str:
    return f'no detections above score_thr={score_thr}'
