"""Runner hooks registered in the ``mmattnvis`` scope."""
from .base import CaptureVisHook, HookConfigError
from .featmap_hook import FeatMapVisHook

__all__ = ['CaptureVisHook', 'HookConfigError', 'FeatMapVisHook']
