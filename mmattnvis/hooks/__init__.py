"""Runner hooks registered in the ``mmattnvis`` scope."""
from .attention_hook import AttentionVisHook
from .base import CaptureVisHook
from .error_hook import ErrorHook
from .explain_hook import ExplainHook
from .featmap_hook import FeatMapVisHook
from .fields import HookConfigError

__all__ = ['AttentionVisHook', 'CaptureVisHook', 'ErrorHook', 'ExplainHook', 'HookConfigError',
           'FeatMapVisHook']
