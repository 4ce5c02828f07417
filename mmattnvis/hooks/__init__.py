"""Runner hooks registered in the ``mmattnvis`` scope."""
from .attention_hook import AttentionVisHook
from .base import CaptureVisHook, HookConfigError
from .featmap_hook import FeatMapVisHook

__all__ = ['AttentionVisHook', 'CaptureVisHook', 'HookConfigError', 'FeatMapVisHook']
