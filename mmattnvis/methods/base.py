"""The contract every map-making method follows."""
from typing import Any, List

from ..structures.maps import Map2D


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
