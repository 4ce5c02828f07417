"""Channel reductions of a ``(C, H, W)`` feature map, one class per reduction.

Definitions follow :meth:`mmengine.visualization.Visualizer.draw_featmap`:

* ``squeeze_mean``: mean over channels.
* ``select_max``: the channel with the largest spatial sum.
* ``pixel_wise_max``: the largest value over channels at each pixel.
* ``None`` with ``topk > 0``: the top-k channels by spatial sum, each its own map.
* ``None`` with ``topk <= 0``: a 1- or 3-channel map shown as it is.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..registry import METHODS
from ..structures import Map2D
from ..utils.errors import UserInputError
from .base import ChannelReduction, MapMethod, build_method

CHANNEL_REDUCTIONS = ('squeeze_mean', 'select_max', 'pixel_wise_max', None)


def _as_chw(featmap) -> torch.Tensor:
    if isinstance(featmap, np.ndarray):
        featmap = torch.from_numpy(featmap)
    if not isinstance(featmap, torch.Tensor) or featmap.dim() != 3:
        shape = tuple(getattr(featmap, 'shape', ()))
        raise UserInputError(f'a feature map must be (C, H, W), got shape {shape}')
    return featmap.detach().float().cpu()


@METHODS.register_module(name='squeeze_mean')
class SqueezeMean(ChannelReduction):
    """Mean over channels."""
    name = 'squeeze_mean'

    def compute(self, featmap) -> List[Map2D]:
        fm = _as_chw(featmap)
        return [Map2D(fm.mean(0).numpy(), 'mean', {'reduction': self.name})]


@METHODS.register_module(name='select_max')
class SelectMax(ChannelReduction):
    """The channel with the largest spatial sum."""
    name = 'select_max'

    def compute(self, featmap) -> List[Map2D]:
        fm = _as_chw(featmap)
        idx = int(torch.argmax(fm.sum(dim=(1, 2))))
        return [Map2D(fm[idx].numpy(), f'channel: {idx}', {'channel': idx,
                                                          'reduction': self.name})]


@METHODS.register_module(name='pixel_wise_max')
class PixelWiseMax(ChannelReduction):
    """The largest activation over channels at each pixel."""
    name = 'pixel_wise_max'

    def compute(self, featmap) -> List[Map2D]:
        fm = _as_chw(featmap)
        return [Map2D(fm.max(0).values.numpy(), 'max', {'reduction': self.name})]


@METHODS.register_module(name='topk')
class TopKChannels(ChannelReduction):
    """The ``topk`` channels with the largest spatial sums, largest first."""
    name = 'topk'

    def __init__(self, topk: int = 20) -> None:
        if topk <= 0:
            raise UserInputError(f'topk must be > 0 for the top-k grid, got {topk}')
        self.topk = topk

    def compute(self, featmap) -> List[Map2D]:
        fm = _as_chw(featmap)
        k = min(self.topk, fm.shape[0])
        _, indices = torch.topk(fm.sum(dim=(1, 2)), k)
        return [
            Map2D(fm[i].numpy(), f'channel: {int(i)}', {'channel': int(i), 'reduction': 'topk'})
            for i in indices
        ]


@METHODS.register_module(name='raw')
class RawChannels(ChannelReduction):
    """A 1- or 3-channel map as it is (``channel_reduction=None, topk<=0``)."""
    name = 'raw'

    def compute(self, featmap) -> List[Map2D]:
        fm = _as_chw(featmap)
        if fm.shape[0] not in (1, 3):
            # MMEngine's wording (Visualizer.draw_featmap), as one line
            raise UserInputError(
                'The input tensor channel dimension must be 1 or 3 when topk is less than 1, '
                f'but the channel dimension you input is {fm.shape[0]}, you can use the '
                'channel_reduction parameter or set topk greater than 0 to solve the error')
        data = fm[0].numpy() if fm.shape[0] == 1 else fm.permute(1, 2, 0).numpy()
        return [Map2D(data, '', {'reduction': self.name})]


def build_reduction(channel_reduction: Optional[str],
                    topk: int = 20,
                    arrangement: Sequence[int] = (4, 5)) -> MapMethod:
    """The method for MMEngine-style ``channel_reduction`` / ``topk`` / ``arrangement`` options.

    Raises:
        UserInputError: Unknown reduction, or an ``arrangement`` with fewer cells than ``topk``.
    """
    if isinstance(channel_reduction, str) and channel_reduction.lower() == 'none':
        channel_reduction = None
    if channel_reduction not in CHANNEL_REDUCTIONS:
        raise UserInputError(
            f'unknown channel_reduction {channel_reduction!r}; choose one of '
            "squeeze_mean, select_max, pixel_wise_max, None")
    if channel_reduction is not None:
        return build_method(dict(type=channel_reduction))
    if topk <= 0:
        return build_method(dict(type='raw'))
    check_arrangement(arrangement, topk)
    return build_method(dict(type='topk', topk=topk))


def check_arrangement(arrangement: Sequence[int], topk: int) -> Tuple[int, int]:
    """Validate ``arrangement`` (rows, cols) against ``topk``."""
    if len(arrangement) != 2 or any(int(a) <= 0 for a in arrangement):
        raise UserInputError(f'arrangement must be two positive numbers ROWS COLS, got '
                             f'{list(arrangement)}')
    rows, cols = int(arrangement[0]), int(arrangement[1])
    if rows * cols < topk:
        raise UserInputError(f'arrangement {rows}x{cols} has {rows * cols} cells, fewer than '
                             f'topk={topk}; use e.g. --arrangement {rows} {-(-topk // rows)}')
    return rows, cols
