"""Resolve modules by dotted name, without ``eval``.

Accepted forms: ``backbone``, ``backbone.stage4``, ``neck.out_layers.2``, ``neck.out_layers[2]``,
``head.layers[-1]`` (negative indices for ``ModuleList``/``Sequential``), ``''`` or ``'model'`` for
the root.
"""
import re
from typing import List

import torch.nn as nn

from ..utils.errors import UserInputError, closest_names

_TOKEN = re.compile(r'\[(-?\d+)\]')


def split_module_name(name: str) -> List[str]:
    """``'neck.out_layers[2].conv'`` -> ``['neck', 'out_layers', '2', 'conv']``."""
    if not isinstance(name, str):
        raise UserInputError(f'layer name must be a string, got {type(name).__name__}')
    name = name.strip()
    if name in ('', 'model'):
        return []
    normalized = _TOKEN.sub(r'.\1', name)
    parts = normalized.split('.')
    if any(p == '' for p in parts):
        raise UserInputError(f'layer name {name!r} is malformed (empty part between dots)')
    return parts


def resolve_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule of ``model`` called ``name``.

    Raises:
        UserInputError: One line naming the part that does not exist and the closest names.
    """
    module = model
    walked: List[str] = []
    for part in split_module_name(name):
        children = module._modules
        key = part
        if part.lstrip('-').isdigit() and isinstance(module, (nn.ModuleList, nn.Sequential)):
            idx = int(part)
            if -len(module) <= idx < len(module):
                key = str(idx % len(module))
        child = children.get(key)
        if child is None:
            raise UserInputError(_unknown_message(model, name, walked, part))
        module = child
        walked.append(key)
    return module


def canonical_name(model: nn.Module, name: str) -> str:
    """The ``named_modules`` spelling of ``name``
    (``neck.out_layers[-1]`` -> ``neck.out_layers.2``)."""
    target = resolve_module(model, name)
    for full, mod in model.named_modules():
        if mod is target:
            return full
    return name  # pragma: no cover - resolve_module only returns members


def _unknown_message(model: nn.Module, name: str, walked: List[str], part: str) -> str:
    all_names = [n for n, _ in model.named_modules() if n]
    close = closest_names(name.replace('[', '.').replace(']', ''), all_names)
    where = ('.'.join(walked) or 'the model')
    hint = f"; closest: {', '.join(close)}" if close else ''
    return f"unknown layer '{name}': '{where}' has no submodule '{part}'{hint}"
