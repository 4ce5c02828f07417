"""Capture: which tensors from which modules, declared by name."""
from .featmaps import FeatureCapture, describe_module_outputs, flatten_tensors
from .names import canonical_name, resolve_module, split_module_name

__all__ = [
    'FeatureCapture', 'describe_module_outputs', 'flatten_tensors', 'canonical_name',
    'resolve_module', 'split_module_name'
]
