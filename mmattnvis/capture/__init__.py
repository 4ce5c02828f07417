"""Capture: which tensors from which modules, declared by name."""
from .attention import AttentionCapture, AttentionRecord, find_attention_modules
from .featmaps import FeatureCapture, describe_module_outputs, flatten_tensors
from .names import canonical_name, resolve_module, split_module_name

__all__ = [
    'FeatureCapture', 'describe_module_outputs', 'flatten_tensors', 'canonical_name',
    'resolve_module', 'split_module_name', 'AttentionCapture', 'AttentionRecord',
    'find_attention_modules'
]
