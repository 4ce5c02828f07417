"""Activations and gradients of multi-level target layers, and AblationCAM's ablation layer for
FPN tuples."""
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .reshape import MultiLevelReshape, _tensors


class MultiLevelActivationsAndGradients:
    """What ``grad-cam``'s ``ActivationsAndGradients`` does, for layers with several outputs.

    A target layer may return a tuple / list / dict of tensors (an FPN) or be called several times
    per forward (a head shared across levels); all of its tensors are gathered as levels and the
    reshape transform merges them. Levels that receive no gradient count as zero gradient.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Optional[Callable], detach: bool = True) -> None:
        self.model = model
        # Set by DetectionCAM for gradient methods: a layer that ran but got no gradient (it
        # is not on the path of the explained score) is then an error, not a silently
        # misaligned or missing gradient.
        self.require_gradients = False
        self.reshape_transform = reshape_transform or MultiLevelReshape()
        self.detach = detach
        self.handles = []
        self._acts: List[List[torch.Tensor]] = [[] for _ in target_layers]
        self._grads: List[Dict[int, torch.Tensor]] = [{} for _ in target_layers]
        for i, layer in enumerate(target_layers):
            self.handles.append(layer.register_forward_hook(self._hook(i)))

    def _hook(self, index: int):

        def hook(module, args, output):
            for t in _tensors(output):
                level = len(self._acts[index])
                self._acts[index].append(t)
                if t.requires_grad:
                    t.register_hook(self._grad_hook(index, level))

        return hook

    def _grad_hook(self, index: int, level: int):

        def hook(grad):
            self._grads[index][level] = grad

        return hook

    def _merge(self, tensors: List[torch.Tensor]) -> torch.Tensor:
        merged = self.reshape_transform(tensors if len(tensors) > 1 else tensors[0])
        return merged.detach().cpu() if self.detach else merged

    @property
    def activations(self) -> List[torch.Tensor]:
        for index, acts in enumerate(self._acts):
            if not acts:
                raise LayerNotOnScorePath(index, ran=False)
        return [self._merge(a) for a in self._acts if a]

    @property
    def gradients(self) -> List[torch.Tensor]:
        out = []
        for index, (acts, grads) in enumerate(zip(self._acts, self._grads)):
            if self.require_gradients and acts and not grads:
                raise LayerNotOnScorePath(index, ran=True)
            if acts and grads:
                out.append(self._merge([grads.get(i, torch.zeros_like(a))
                                        for i, a in enumerate(acts)]))
        return out

    def __call__(self, x: torch.Tensor):
        self.clear()
        out = self.model(x)
        self.check_spatial(int(x.shape[0]))
        return out

    def check_spatial(self, batch: int) -> None:
        """Every layer that ran must give a ``(batch, C, H, W)`` map after the reshape transform;
        a token output without a grid (a DETR decoder's ``(B, queries, C)``, or its stacked
        ``(layers, B, queries, C)``) raises :class:`NotSpatialLayer` instead of grad-cam's
        shape errors."""
        for index, acts in enumerate(self._acts):
            if not acts:
                continue
            shapes = tuple(tuple(int(v) for v in t.shape) for t in acts)
            try:
                with torch.no_grad():
                    merged = self.reshape_transform(acts if len(acts) > 1 else acts[0])
            except (TypeError, ValueError, RuntimeError):
                raise NotSpatialLayer(index, shapes) from None
            if merged.dim() != 4 or int(merged.shape[0]) != batch:
                raise NotSpatialLayer(index, shapes)

    def clear(self) -> None:
        for a in self._acts:
            a.clear()
        for g in self._grads:
            g.clear()

    def release(self) -> None:
        self.clear()
        for h in self.handles:
            h.remove()
        self.handles.clear()


class LayerNotOnScorePath(RuntimeError):
    """A target layer did not run, or no gradient of the explained score reached it."""

    def __init__(self, index: int, ran: bool) -> None:
        super().__init__(index, ran)
        self.index = index
        self.ran = ran


class NotSpatialLayer(RuntimeError):
    """A target layer's output has no ``(B, C, H, W)`` grid (e.g. decoder query tokens)."""

    def __init__(self, index: int, shapes: tuple) -> None:
        super().__init__(index, shapes)
        self.index = index
        self.shapes = shapes


def spatial_layers(detector: nn.Module, run: Callable[[], object],
                   input_shape: Sequence[int], reshape_transform: Optional[Callable] = None,
                   max_depth: int = 2) -> List[str]:
    """Names of the detector's modules (at most ``max_depth`` levels deep) whose output makes a
    CAM: after ``reshape_transform`` a ``(B, C, H, W)`` map on a strided grid of the
    ``(B, 3, H_in, W_in)`` input that depends on the image (not a positional encoding). Found
    with one forward (``run()``, gradients on: the caller freezes the parameters)."""
    from ...structures.geometry import infer_stride
    reshape = reshape_transform or MultiLevelReshape()
    batch, in_hw = int(input_shape[0]), tuple(int(v) for v in input_shape[-2:])
    found: Dict[str, bool] = {}
    handles = []

    def hook(name):
        def record(module, args, output):
            levels = _tensors(output)
            try:
                with torch.no_grad():
                    merged = reshape(levels if len(levels) > 1 else levels[0])
                ok = (merged.dim() == 4 and int(merged.shape[0]) == batch
                      and any(t.requires_grad for t in levels)
                      and infer_stride(in_hw, merged.shape[-2:]) is not None)
            except (TypeError, ValueError, RuntimeError, IndexError):
                ok = False
            found[name] = found.get(name, True) and ok
        return record

    try:
        for name, module in detector.named_modules():
            if name and name.count('.') < max_depth:
                handles.append(module.register_forward_hook(hook(name)))
        run()
    finally:
        for h in handles:
            h.remove()
    return [name for name, ok in found.items() if ok and name != 'data_preprocessor']


def ablation_layer_class():
    from pytorch_grad_cam.ablation_layer import AblationLayer

    class MultiLevelAblationLayer(AblationLayer):
        """Stands in for a multi-level layer during AblationCAM: zeroes one channel per batch item.

        Channel indices count through the levels in order (the reshape transform's channel
        order), so index ``i`` of the merged map is channel ``i - offset_l`` of level ``l``.
        """

        def set_next_batch(self, input_batch_index, activations, num_channels_to_ablate):
            self.levels = [t[input_batch_index].detach().clone().unsqueeze(0).repeat(
                num_channels_to_ablate, *([1] * (t.dim() - 1))) for t in _tensors(activations)]
            self.container = type(activations) if isinstance(activations, (tuple, list)) else None

        def __call__(self, *args, **kwargs):
            offsets = np.cumsum([0] + [t.shape[1] for t in self.levels])
            for i in range(self.levels[0].shape[0]):
                ch = int(self.indices[i])
                level = int(np.searchsorted(offsets, ch, side='right') - 1)
                self.levels[level][i, ch - offsets[level]] = 0
            if self.container is None:
                return self.levels[0]
            return self.container(self.levels)

    return MultiLevelAblationLayer
