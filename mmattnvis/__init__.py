"""mmattnvis: see what OpenMMLab detectors look at.

Layers: ``capture`` (hooks by module name) -> ``methods`` (map-making classes) -> ``render`` (pure
array-to-image functions) -> ``visualization`` / ``hooks`` / ``tools`` (thin integration).
"""
from .version import __version__
from .registry import HOOKS, METHODS, MODELS, VISBACKENDS, VISUALIZERS  # noqa: F401
from .utils.setup_env import register_all_modules
from .compat import patch_config_resolution

patch_config_resolution()  # mmattnvis:: configs in _base_ and Config.fromfile

__all__ = [
    '__version__', 'register_all_modules', 'HOOKS', 'METHODS', 'MODELS', 'VISBACKENDS',
    'VISUALIZERS'
]
