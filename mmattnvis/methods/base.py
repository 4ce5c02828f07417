"""The contract every map-making method follows."""
from dataclasses import dataclass, field
from typing import Any, Dict, List

import numpy as np


@dataclass
class Map2D:
    """One 2-D map (H x W float32) plus where it came from.

    Attributes:
        data: The map, on the grid of the tensor it was computed from (not yet aligned).
        label: Short text drawn on the panel (e.g. ``'channel: 17'``).
        meta: Anything a renderer or metric may want (channel index, layer, head, query...).
    """
    data: np.ndarray
    label: str = ''
    meta: Dict[str, Any] = field(default_factory=dict)


class MapMethod:
    """Base of all methods: ``compute(source) -> List[Map2D]``.

    ``source`` is method-specific (a ``(C, H, W)`` feature map for the reductions); a method never
    touches the model, so hooks and rendering stay elsewhere.
    """

    name: str = 'base'

    def compute(self, source: Any) -> List[Map2D]:
        raise NotImplementedError

    def __call__(self, source: Any) -> List[Map2D]:
        return self.compute(source)
