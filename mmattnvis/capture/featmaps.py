"""Record module outputs (or inputs) by name with forward hooks that are always removed."""
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from .base import CaptureBase
from .names import resolve_module


def flatten_tensors(obj: Any, prefix: str) -> 'OrderedDict[str, torch.Tensor]':
    """Name every tensor inside a tensor / tuple / list / dict output.

    A tensor keeps ``prefix``; sequences add ``.i`` (FPN levels: ``neck.0``, ``neck.1``); dicts add
    ``.key``. Non-tensor leaves are skipped.
    """
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            out.update(flatten_tensors(item, f'{prefix}.{i}'))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            out.update(flatten_tensors(item, f'{prefix}.{key}'))
    return out


class FeatureCapture(CaptureBase):
    """Context manager that records what the named modules produce (or receive).

    Example:
        >>> with FeatureCapture(model, ['backbone', 'neck']) as cap:
        ...     model(images)
        >>> cap.featmaps()   # {'backbone.0': (N, C, H, W), ..., 'neck.2': ...}

    Args:
        model: Any ``nn.Module``.
        targets: Dotted module names (``backbone.stage4``, ``neck.out_layers[2]``).
        what: ``'output'`` (forward hook) or ``'input'`` (forward pre-hook, e.g. the
            multi-level features a detection head receives).
        keep: ``False`` records nothing until :meth:`enable` (hooks stay attached, which is what
            runner hooks want for iterations that are not drawn).

    Tensors are detached and cloned (in-place ops later in the forward would change them
    otherwise); every image of a batch is kept. All hooks are removed on exit, also when the
    forward raises.
    """

    def __init__(self,
                 model: nn.Module,
                 targets: Union[str, Sequence[str]],
                 what: str = 'output',
                 keep: bool = True) -> None:
        super().__init__()
        if what not in ('output', 'input'):
            raise ValueError(f"what must be 'output' or 'input', got {what!r}")
        if isinstance(targets, str):
            targets = [targets]
        self.model = model
        self.what = what
        # Resolve now: an unknown name fails before any forward pass.
        self.modules: 'OrderedDict[str, nn.Module]' = OrderedDict()
        for name in targets:
            self.modules[name] = resolve_module(model, name)
        self._records: Dict[str, List['OrderedDict[str, torch.Tensor]']] = {}
        self.keep = keep

    # -- lifecycle (attach / remove / context manager: CaptureBase) ---------------------------
    def _attach(self) -> None:
        for name, module in self.modules.items():
            if self.what == 'output':
                handle = module.register_forward_hook(self._make_hook(name))
            else:
                handle = module.register_forward_pre_hook(self._make_pre_hook(name))
            self._handles.append(handle)

    def enable(self, keep: bool = True) -> None:
        """Start (or stop) recording without touching the hooks."""
        self.keep = keep

    def clear(self) -> None:
        """Forget what was recorded (e.g. after drawing one runner iteration)."""
        self._records = {}

    # -- hooks -------------------------------------------------------------------------------
    def _record(self, name: str, value: Any) -> None:
        if not self.keep:
            return
        flat = flatten_tensors(value, name)
        flat = OrderedDict((k, v.detach().clone()) for k, v in flat.items())
        self._records.setdefault(name, []).append(flat)

    def _make_hook(self, name: str):

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._record(name, output)

        return hook

    def _make_pre_hook(self, name: str):

        def hook(module: nn.Module, args: Any) -> None:
            self._record(name, args[0] if isinstance(args, tuple) and len(args) == 1 else args)

        return hook

    # -- results -----------------------------------------------------------------------------
    @property
    def records(self) -> Dict[str, List['OrderedDict[str, torch.Tensor]']]:
        """Per target name, one flattened dict per call of the module."""
        return self._records

    def tensors(self) -> 'OrderedDict[str, torch.Tensor]':
        """Every recorded tensor by name, in target order.

        A module called more than once in the forward (a head shared across FPN levels) gets
        ``#k`` appended for its k-th call.
        """
        out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
        for name in self.modules:
            calls = self._records.get(name, [])
            for k, flat in enumerate(calls):
                for key, tensor in flat.items():
                    out[key if len(calls) == 1 else f'{key}#{k}'] = tensor
        return out

    def featmaps(self) -> 'OrderedDict[str, torch.Tensor]':
        """Recorded tensors that are image-like feature maps, ``(N, C, H, W)``."""
        return OrderedDict((k, v) for k, v in self.tensors().items() if v.dim() == 4)

    def missing(self) -> List[str]:
        """Targets that were never called during the recorded forward passes."""
        return [n for n in self.modules if n not in self._records]


def describe_module_outputs(model: nn.Module,
                            run_forward,
                            max_depth: Optional[int] = None) -> List[str]:
    """Lines of ``name (Class): output shapes`` for every module, from one forward pass.

    Args:
        model: Any module.
        run_forward: A callable that runs one forward of ``model``.
        max_depth: Only list modules at most this many dots deep (``None``: all).
    """
    shapes: Dict[str, List[str]] = {}
    handles = []

    def make(name: str):

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            flat = flatten_tensors(output, '')
            shapes.setdefault(name, []).append(
                ', '.join(f"{k.lstrip('.') + '=' if k else ''}{tuple(v.shape)}"
                          for k, v in flat.items()) or type(output).__name__)

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make(name)))
        run_forward()
    finally:
        for handle in handles:
            handle.remove()
    lines = []
    for name, module in model.named_modules():
        if not name:
            continue
        depth = name.count('.') + 1
        if max_depth is not None and depth > max_depth:
            continue
        calls = shapes.get(name)
        if calls is None:
            desc = '(not called)'
        elif len(calls) == 1:
            desc = calls[0]
        else:
            desc = f'{len(calls)} calls, first: {calls[0]}'
        lines.append(f"{'  ' * (depth - 1)}{name} ({type(module).__name__}): {desc}")
    return lines
