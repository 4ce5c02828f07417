"""Attention rollout (Abnar & Zuidema, 2020) and gradient rollout over token-to-token attention.

Layers are given in forward order; each fused map gets the identity added (the residual) and
its rows renormalised to sum 1 (``keepdim`` row sums), then ``result = A_l @ result``.
"""
from typing import Optional, Sequence

import torch

from .attention import fuse_heads


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
            fused = (grads[i] * attn).clamp(min=0).mean(0)
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
