"""A 2-D map and where it came from."""
from dataclasses import dataclass, field
from typing import Any, Dict

import numpy as np

# The metadata keys every producer fills where they apply; the report filters on them.
MAP_META_KEYS = ('kind', 'method', 'layer', 'level', 'head', 'query', 'detection', 'channel',
                 'point', 'aligned')
# Metadata keys whose values are arrays (e.g. deformable sampling points, ``(K, 5)``): a saved
# record keeps them with the maps' arrays (npz), not in its JSON.
ARRAY_META_KEYS = ('points', )


@dataclass
class Map2D:
    """One 2-D map (H x W float32) plus where it came from.

    Attributes:
        data: The map, on the grid of the tensor it was computed from unless
            ``meta['aligned']`` says it is already on the original image's pixel grid.
        label: Short text drawn on the panel (e.g. ``'channel: 17'``).
        meta: Where it came from (keys in :data:`MAP_META_KEYS`: layer, level, head, query,
            method, channel, detection index...); JSON-able values, except the arrays of
            :data:`ARRAY_META_KEYS` (``points``: ``x, y, weight, level, head`` rows).
    """
    data: np.ndarray
    label: str = ''
    meta: Dict[str, Any] = field(default_factory=dict)
