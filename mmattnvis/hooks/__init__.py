"""Runner hooks registered in the ``mmattnvis`` scope."""
from .attention_hook import AttentionVisHook
from .base import CaptureVisHook, HookConfigError
from .error_hook import ErrorHook
from .featmap_hook import FeatMapVisHook

__all__ = ['AttentionVisHook', 'CaptureVisHook', 'ErrorHook', 'HookConfigError', 'FeatMapVisHook']
