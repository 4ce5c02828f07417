"""mmattnvis: see what OpenMMLab detectors look at.

Layers, each importing only those below it (``tests/test_layering.py``):

* ``structures`` (detections, maps, geometry, boxes, result records), ``utils``, ``compat``
  (patches of other libraries' internals) and the registries;
* ``capture`` (hooks by module name), ``render`` (pure array-to-image functions), ``sinks``
  (writing results), ``datasets`` and ``models`` (registered for MMDet configs);
* ``methods`` (map-making classes) and ``metrics`` (maps and boxes in, numbers out);
* ``visualization``, then ``apis`` (running models), then ``hooks`` / ``cli`` / ``zoo``.
"""
from .compat import patch_config_resolution
from .registry import HOOKS, METHODS, MODELS, VISUALIZERS  # noqa: F401
from .setup_env import register_all_modules
from .version import __version__

patch_config_resolution()  # mmattnvis:: configs in _base_ and Config.fromfile

__all__ = [
    '__version__', 'register_all_modules', 'HOOKS', 'METHODS', 'MODELS',
    'VISUALIZERS'
]
