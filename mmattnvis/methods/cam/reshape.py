"""Reshape transforms: layer outputs (tensors, FPN tuples, shared heads, tokens) ->
``(B, C, H, W)`` maps for ``grad-cam``."""
import math
from typing import Any, List, Optional, Tuple

import torch
import torch.nn.functional as F


def _tensors(obj: Any) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for t in obj if isinstance(t, torch.Tensor)]
    return []


class MultiLevelReshape:
    """Several ``(B, C_i, H_i, W_i)`` maps -> one ``(B, sum C_i, H, W)`` on the finest grid.

    Each level is resized to the largest ``H x W`` among them (``mode``: ``bilinear`` by
    default; ``nearest`` keeps a per-level sum exact, as ODAM needs) and the levels are
    concatenated along channels, so a CAM weighs every level's channels together. A single
    4-D tensor passes through unchanged.
    """

    def __init__(self, mode: str = 'bilinear') -> None:
        self.mode = mode

    def __call__(self, x: Any) -> torch.Tensor:
        levels = _tensors(x)
        if not levels:
            raise TypeError(f'cannot make a map from a {type(x).__name__} output')
        if len(levels) == 1:
            return levels[0]
        h, w = max((t.shape[-2], t.shape[-1]) for t in levels)
        extra = {} if self.mode == 'nearest' else {'align_corners': False}
        out = [t if t.shape[-2:] == (h, w) else
               F.interpolate(t, size=(h, w), mode=self.mode, **extra) for t in levels]
        return torch.cat(out, dim=1)


class TokenReshape:
    """``(B, N, C)`` transformer tokens -> ``(B, C, h, w)`` on the patch grid.

    Args:
        grid: ``(h, w)`` of the patch grid; ``None`` takes the largest square that fits.
            Non-square grids need it (e.g. ``(H_in // patch, W_in // patch)``).
        extra_tokens: Leading tokens that are not patches (class / distillation tokens);
            ``None`` infers ``N - h * w``.
    """

    def __init__(self, grid: Optional[Tuple[int, int]] = None,
                 extra_tokens: Optional[int] = None) -> None:
        self.grid = grid
        self.extra_tokens = extra_tokens

    def __call__(self, x: Any) -> torch.Tensor:
        if isinstance(x, (tuple, list)):
            x = x[0]
        if x.dim() == 4:
            return x
        if x.dim() != 3:
            raise ValueError(f'token output must be (B, N, C); got {tuple(x.shape)}')
        n = x.shape[1]
        if self.grid is None:
            side = int(math.isqrt(n))
            h, w = side, side
        else:
            h, w = self.grid
        extra = n - h * w if self.extra_tokens is None else self.extra_tokens
        if extra < 0 or n - extra != h * w:
            raise ValueError(f'{n} tokens do not make a {h}x{w} grid plus {extra} extra tokens')
        return x[:, extra:].reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2)
