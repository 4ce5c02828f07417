"""Token-to-token attention of transformer blocks (ViT-style backbones, DETR encoders), for
attention rollout and gradient rollout.

Three kinds of attention module are recognised, all attached from outside with hooks:

* ``nn.MultiheadAttention`` (used directly or inside mmcv's ``MultiheadAttention``): a kwargs
  pre-hook asks it for per-head weights (``need_weights=True, average_attn_weights=False``).
* timm-style attention (a ``qkv`` linear layer, ``num_heads`` and a ``fused_attn`` switch): the
  switch is turned off for the capture (and restored), so the module computes the softmax
  explicitly and the probabilities are read where it applies ``attn_drop``; they are the tensors
  that multiply the values, so gradients with respect to them are available.
* Fused attention without a switch (e.g. mmpretrain's ``MultiheadAttention`` calling
  ``scaled_dot_product_attention``): the probabilities are recomputed from the ``qkv`` output as
  ``softmax(q k^T * scale)``. They equal what the fused kernel used but are not on its path, so
  gradient rollout is refused for such modules.
"""
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..utils.errors import UserInputError
from .base import CaptureBase
from .names import resolve_module


def token_attention_kind(module: nn.Module) -> Optional[str]:
    """``mha``, ``timm``, ``fused`` or ``None`` for a module that is not token attention."""
    if isinstance(module, nn.MultiheadAttention):
        return 'mha'
    qkv = getattr(module, 'qkv', None)
    if isinstance(qkv, nn.Linear) and isinstance(getattr(module, 'num_heads', None), int):
        if hasattr(module, 'fused_attn') and isinstance(getattr(module, 'attn_drop', None),
                                                        nn.Module):
            return 'timm'
        return 'fused'
    return None


def find_token_attention(model: nn.Module) -> 'OrderedDict[str, nn.Module]':
    """Every token-attention module of ``model`` by name, in definition order."""
    found = OrderedDict()
    for name, module in model.named_modules():
        if token_attention_kind(module) is not None:
            found[name] = module
    return found


class TokenAttentionCapture(CaptureBase):
    """Records ``(B, heads, N, N)`` attention probabilities of the chosen modules, per call.

    Args:
        model: Any ``nn.Module``.
        names: Module names (``None``: every token-attention module found).
        keep_grad: Keep the recorded tensors in the graph (for gradient rollout); a
            ``fused`` module then raises a one-line error.

    After a forward pass, :meth:`maps` lists the maps in forward order (with the module
    :attr:`names`); after a backward pass of a target, :meth:`grads` their gradients.
    """

    def __init__(self, model: nn.Module, names: Optional[Sequence[str]] = None,
                 keep_grad: bool = False) -> None:
        if names is None:
            self.modules = find_token_attention(model)
        else:
            self.modules = OrderedDict((n, resolve_module(model, n)) for n in names)
        if not self.modules:
            raise UserInputError('no token attention found (nn.MultiheadAttention, or modules '
                                 'with qkv and num_heads)')
        for name, module in self.modules.items():
            kind = token_attention_kind(module)
            if kind is None:
                raise UserInputError(f'{name} ({type(module).__name__}) is not an attention '
                                     'module with token-to-token weights')
            if kind == 'fused' and keep_grad:
                raise UserInputError(f'{name} uses fused attention without a switch: its '
                                     'weights are recomputed, so gradient rollout is not '
                                     'available; use plain rollout')
        super().__init__()
        self.keep_grad = keep_grad
        self.attentions: List[torch.Tensor] = []
        self.names: List[str] = []
        self._switches: Dict[Any, bool] = {}  # timm attention modules: their fused_attn

    # -- lifecycle (attach / remove / context manager: CaptureBase) ---------------------------
    def _attach(self) -> None:
        for name, module in self.modules.items():
            getattr(self, f'_attach_{token_attention_kind(module)}')(name, module)

    def _restore(self) -> None:
        for module, value in self._switches.items():
            module.fused_attn = value
        self._switches = {}

    def clear(self) -> None:
        self.attentions, self.names = [], []

    def _store(self, name: str, attn: torch.Tensor) -> None:
        if self.keep_grad and attn.requires_grad:
            attn.retain_grad()
        self.attentions.append(attn if self.keep_grad else attn.detach())
        self.names.append(name)

    def _attach_mha(self, name: str, module: nn.MultiheadAttention) -> None:

        def pre(mod, args, kwargs):
            kwargs = dict(kwargs)
            kwargs['need_weights'] = True
            kwargs['average_attn_weights'] = False
            return args, kwargs

        def post(mod, args, kwargs, output):
            weights = output[1]
            if weights.dim() == 3:  # unbatched input: (heads, L, S)
                weights = weights.unsqueeze(0)
            if self.keep_grad and weights._base is not None:
                # The returned tensor is a view of the probabilities that multiplied the values;
                # hook the base so the gradient of the output reaches it.
                base = weights._base
                if base.requires_grad:
                    base.retain_grad()
                self.attentions.append(_BaseView(base, weights.shape))
                self.names.append(name)
                return
            self._store(name, weights)

        self._handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        self._handles.append(module.register_forward_hook(post, with_kwargs=True))

    def _attach_timm(self, name: str, module: Any) -> None:
        self._switches[module] = module.fused_attn
        module.fused_attn = False

        def post(mod, args, output):
            self._store(name, output)

        self._handles.append(module.attn_drop.register_forward_hook(post))

    def _attach_fused(self, name: str, module: Any) -> None:
        heads = module.num_heads

        def post(mod, args, output):
            b, n, c3 = output.shape
            qkv = output.reshape(b, n, 3, heads, c3 // (3 * heads)).permute(2, 0, 3, 1, 4)
            q, k = qkv[0], qkv[1]
            for norm in ('q_norm', 'k_norm'):
                f = getattr(module, norm, None)
                if isinstance(f, nn.Module):
                    q, k = (f(q), k) if norm == 'q_norm' else (q, f(k))
            scale = getattr(module, 'scale', q.shape[-1]**-0.5)
            self._store(name, ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1).detach())

        self._handles.append(module.qkv.register_forward_hook(post))

    def maps(self) -> List[torch.Tensor]:
        """The recorded maps as plain ``(B, heads, N, N)`` tensors."""
        return [a.value() if isinstance(a, _BaseView) else a for a in self.attentions]

    def grads(self) -> List[torch.Tensor]:
        """Gradients of the recorded maps, ``(B, heads, N, N)`` each."""
        out = []
        for a in self.attentions:
            if isinstance(a, _BaseView):
                g = a.base.grad
                out.append(torch.zeros(a.shape) if g is None else g.reshape(a.shape))
            else:
                out.append(torch.zeros_like(a) if a.grad is None else a.grad)
        return out


class _BaseView:
    """A recorded ``nn.MultiheadAttention`` map held through its on-path base tensor."""

    def __init__(self, base: torch.Tensor, shape: torch.Size) -> None:
        self.base = base
        self.shape = shape

    def value(self) -> torch.Tensor:
        return self.base.detach().reshape(self.shape)


__all__ = ['TokenAttentionCapture', 'find_token_attention', 'token_attention_kind']
