"""Data structures on the ground floor: everything may import them, they import nothing of ours.

:class:`ImageGeometry` (how an image sits in the network input), :class:`Detection` (one
prediction), :class:`Map2D` (one map with its metadata) and :class:`ResultRecord` (one image of a
run: path, geometry, detections, named maps), saved as JSON + compressed arrays.
"""
from .detection import Detection
from .geometry import ImageGeometry, infer_stride
from .maps import ARRAY_META_KEYS, MAP_META_KEYS, Map2D
from .record import RECORD_VERSION, TASKS, IncompatibleResults, ResultRecord

__all__ = [
    'Detection', 'ImageGeometry', 'infer_stride', 'Map2D', 'MAP_META_KEYS', 'ARRAY_META_KEYS',
    'ResultRecord', 'RECORD_VERSION', 'TASKS', 'IncompatibleResults'
]
