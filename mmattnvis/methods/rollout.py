"""Attention rollout (Abnar & Zuidema, 2020) and gradient rollout over token-to-token attention.

Layers are given in forward order; each fused map gets the identity added (the residual) and
its rows renormalised to sum 1 (``keepdim`` row sums), then ``result = A_l @ result``.
"""
from typing import List, Optional, Sequence

import torch

from ..registry import METHODS
from ..structures import Map2D
from ..utils.errors import UserInputError
from .attention import DIRECTIONS, fuse_heads, gradient_weighted
from .base import AttentionMaps


def _discard(fused: torch.Tensor, ratio: float, keep_first: bool) -> torch.Tensor:
    """Zero the ``ratio`` lowest entries of each row (never the first token when
    ``keep_first``)."""
    if ratio <= 0:
        return fused
    out = fused.clone()
    n = out.shape[-1]
    k = int(n * ratio)
    if k == 0:
        return out
    vals = out.clone()
    if keep_first:
        vals[..., 0] = float('inf')
    idx = vals.topk(k, dim=-1, largest=False).indices
    out.scatter_(-1, idx, 0.0)
    return out


def attention_rollout(attns: Sequence[torch.Tensor],
                      head_fusion: str = 'mean',
                      discard_ratio: float = 0.0,
                      keep_first: bool = True,
                      grads: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """Rollout of ``(heads, N, N)`` attention maps given in forward order -> ``(N, N)``.

    Args:
        attns: Per-layer attention, forward order.
        head_fusion: ``mean``, ``max`` or ``min`` over heads.
        discard_ratio: Fraction of the lowest attention per row set to 0 before the residual.
        keep_first: Never discard the first (class) token.
        grads: Gradients of a target w.r.t. each map: gradient rollout, which fuses
            ``(grad * attn)^+`` over heads by the mean instead.
    """
    if not attns:
        raise ValueError('attention_rollout needs at least one layer')
    n = attns[0].shape[-1]
    result = torch.eye(n, dtype=attns[0].dtype, device=attns[0].device)
    for i, attn in enumerate(attns):
        if grads is not None:
            fused = gradient_weighted(attn, grads[i])
        else:
            fused = fuse_heads(attn, head_fusion)[0]
        fused = _discard(fused, discard_ratio, keep_first)
        a = fused + torch.eye(n, dtype=fused.dtype, device=fused.device)
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result
    return result


def rollout_from_capture(capture, batch_index: int = 0, head_fusion: str = 'mean',
                         discard_ratio: float = 0.0, keep_first: bool = True,
                         gradient: bool = False) -> torch.Tensor:
    """Rollout of what a :class:`~mmattnvis.capture.tokens.TokenAttentionCapture` recorded.

    Args:
        capture: The capture after a forward pass (and, for ``gradient``, a backward pass
            of the target with ``keep_grad=True``).
        batch_index: Which image of the batch.
        gradient: Gradient rollout instead of attention rollout.
    """
    maps = [m[batch_index].float() for m in capture.maps()]
    grads = [g[batch_index].float() for g in capture.grads()] if gradient else None
    return attention_rollout(maps, head_fusion, discard_ratio, keep_first, grads)


@METHODS.register_module()
class TokenRollout(AttentionMaps):
    """Maps from an ``(N, N)`` rollout over an ``(h, w)`` token grid (no extra tokens).

    ``compute((rollout, grid, tokens))``: one :class:`Map2D` per ``(row, col)`` token, the
    rollout's column (``direction='to'``: how much every token's output draws on that token)
    or row (``'from'``: what that token's output is made of); a token ``None`` gives the mean
    over all rows (what every output draws on each token, on average).
    """
    name = 'rollout'

    def __init__(self, direction: str = 'to', label: str = 'rollout') -> None:
        if direction not in DIRECTIONS:
            raise UserInputError(f'unknown direction {direction!r}; choose to or from')
        self.direction = direction
        self.label = label

    def compute(self, source) -> List[Map2D]:
        rollout, grid, tokens = source
        h, w = grid
        if rollout.shape != (h * w, h * w):
            raise ValueError(f'rollout {tuple(rollout.shape)} does not match the {h}x{w} grid')
        maps = []
        for tok in tokens:
            if tok is None:
                vec, label = rollout.mean(0), f'{self.label}, mean over tokens'
            else:
                i = tok[0] * w + tok[1]
                vec = rollout[:, i] if self.direction == 'to' else rollout[i]
                label = f'{self.label} {self.direction.upper()}'
            maps.append(Map2D(vec.detach().float().cpu().reshape(h, w).numpy(), label,
                              {'token': tok, 'direction': self.direction}))
        return maps


def rollout_label(head_fusion: str, discard_ratio: float, gradient: bool) -> str:
    """Short panel text naming the rollout variant."""
    base = 'grad rollout' if gradient else f'rollout {head_fusion}'
    return base + (f' d{discard_ratio:g}' if discard_ratio > 0 else '')
