"""Methods: one small class per way of making a map, behind :class:`MapMethod`."""
from .base import Map2D, MapMethod
from .featmap import (CHANNEL_REDUCTIONS, PixelWiseMax, RawChannels, SelectMax, SqueezeMean,
                      TopKChannels, build_reduction, check_arrangement)

__all__ = [
    'Map2D', 'MapMethod', 'CHANNEL_REDUCTIONS', 'PixelWiseMax', 'RawChannels', 'SelectMax',
    'SqueezeMean', 'TopKChannels', 'build_reduction', 'check_arrangement'
]
