"""Capture attention from unmodified MMDet DETR-family models with hooks attached from outside.

Three kinds of attention module occur in MMDet 3.x DETRs:

* mmcv ``MultiheadAttention`` (DETR, the encoders of Conditional / DAB-DETR, the decoder
  self-attention of Deformable DETR / DINO). It calls an inner ``nn.MultiheadAttention`` with
  keyword arguments; a forward pre-hook with kwargs asks that call for
  ``need_weights=True, average_attn_weights=False`` and a forward hook keeps the per-head weights
  it returns. The attention output does not change: the default call already computes the
  weights (and averages them afterwards).
* MMDet ``ConditionalAttention`` (Conditional / DAB-DETR decoders). Its per-head softmax weights
  pass through its ``attn_drop`` module; a forward hook there keeps them.
* mmcv ``MultiScaleDeformableAttention`` (Deformable DETR, DINO). Hooks on its
  ``sampling_offsets`` and ``attention_weights`` projections and a pre-hook for its
  ``reference_points`` / ``spatial_shapes`` give the sampling locations and their weights,
  computed with the module's own formula.

Every hook is removed on exit, also when the forward raises.
"""
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..utils.errors import UserInputError
from .base import CaptureBase

PARTS = ('encoder', 'decoder_self', 'decoder_cross')


def _attention_classes():
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    from mmcv.ops import MultiScaleDeformableAttention
    from mmdet.models.layers.transformer.utils import ConditionalAttention
    return MultiheadAttention, ConditionalAttention, MultiScaleDeformableAttention


def attention_kind(module: nn.Module) -> Optional[str]:
    """``'mha'``, ``'conditional'``, ``'deformable'`` or ``None``."""
    mha, cond, msda = _attention_classes()
    if isinstance(module, msda):
        return 'deformable'
    if isinstance(module, cond):
        return 'conditional'
    if isinstance(module, mha):
        return 'mha'
    return None


def is_detr_family(model: nn.Module) -> bool:
    from mmdet.models.detectors import DetectionTransformer
    return isinstance(model, DetectionTransformer)


def check_detr_family(model: nn.Module) -> None:
    if not is_detr_family(model):
        raise UserInputError(
            f'{type(model).__name__} is not a DETR-family detector (no transformer encoder/'
            'decoder); attention maps need DETR, Conditional DETR, DAB-DETR, Deformable DETR '
            'or DINO')


def find_attention_modules(
        model: nn.Module) -> 'OrderedDict[Tuple[str, int], Tuple[str, nn.Module]]':
    """``{(part, layer): (module_name, module)}`` for the encoder and decoder layers."""
    check_detr_family(model)
    found: 'OrderedDict[Tuple[str, int], Tuple[str, nn.Module]]' = OrderedDict()
    for stack, attrs in (('encoder', (('self_attn', 'encoder'), )),
                         ('decoder', (('self_attn', 'decoder_self'),
                                      ('cross_attn', 'decoder_cross')))):
        layers = getattr(getattr(model, stack, None), 'layers', None)
        if layers is None:
            continue
        for i, layer in enumerate(layers):
            for attr, part in attrs:
                mod = getattr(layer, attr, None)
                if mod is not None and attention_kind(mod) is not None:
                    found[(part, i)] = (f'{stack}.layers.{i}.{attr}', mod)
    return found


def num_heads(module: Any) -> int:
    """Heads of an attention module (its ``num_heads``)."""
    return int(module.num_heads)


@dataclass
class DeformableRecord:
    """Sampling of one ``MultiScaleDeformableAttention`` call.

    Attributes:
        locations: ``(B, Q, heads, levels, points, 2)``, x/y normalised to the padded input.
        weights: ``(B, Q, heads, levels, points)``, softmax over levels x points per head.
        spatial_shapes: ``(levels, 2)`` feature sizes (h, w).
        references: ``(B, Q, 2)`` the query's reference point (centre), normalised like
            ``locations``.
    """
    locations: torch.Tensor
    weights: torch.Tensor
    spatial_shapes: torch.Tensor
    references: Optional[torch.Tensor] = None


@dataclass
class AttentionRecord:
    """What one forward pass recorded.

    Attributes:
        dense: ``{(part, layer): (B, heads, L_query, L_key)}`` per-head attention weights.
        deformable: ``{(part, layer): DeformableRecord}``.
        key_shape: ``(h, w)`` of the feature grid the dense attention keys come from.
        key_padding: ``(B, h, w)`` bool, ``True`` on batch padding (from the positional encoding).
        head_outputs: ``(cls_scores, bbox_preds)`` of the last decoder layer, ``(B, Q, ...)``.
    """
    dense: Dict[Tuple[str, int], torch.Tensor] = field(default_factory=dict)
    deformable: Dict[Tuple[str, int], DeformableRecord] = field(default_factory=dict)
    key_shape: Optional[Tuple[int, int]] = None
    key_padding: Optional[torch.Tensor] = None
    head_outputs: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    graph: Dict[Tuple[str, int], torch.Tensor] = field(default_factory=dict)
    """With ``keep_grad``: the attention tensors exactly as used in the forward graph,
    ``(B * heads, L_query, L_key)``, to differentiate with respect to."""

    def layers(self, part: str) -> List[int]:
        keys = set(self.dense) | set(self.deformable)
        return sorted(i for p, i in keys if p == part)


class AttentionCapture(CaptureBase):
    """Context manager recording per-head attention of a DETR-family model.

    Args:
        model: An MMDet ``DetectionTransformer`` (DETR, Conditional DETR, DAB-DETR,
            Deformable DETR, DINO), unmodified.
        parts: Any of ``encoder``, ``decoder_self``, ``decoder_cross``.
        layers: Layer indices to record (``None``: all; negative indices count from the end).
        keep_grad: Keep recorded tensors in the autograd graph (relevance methods need the
            gradients of the attention); otherwise they are detached.
    """

    def __init__(self,
                 model: nn.Module,
                 parts: Sequence[str] = PARTS,
                 layers: Optional[Sequence[int]] = None,
                 keep_grad: bool = False) -> None:
        for part in parts:
            if part not in PARTS:
                raise UserInputError(f'unknown attention part {part!r}; choose from '
                                     f'{", ".join(PARTS)}')
        super().__init__()
        self.model = model
        self.keep_grad = keep_grad
        modules = find_attention_modules(model)
        self.targets: 'OrderedDict[Tuple[str, int], Tuple[str, nn.Module]]' = OrderedDict()
        for part in parts:
            indices = sorted(i for p, i in modules if p == part)
            wanted = indices if layers is None else self._select(indices, layers, part)
            for i in wanted:
                self.targets[(part, i)] = modules[(part, i)]
        self.record = AttentionRecord()
        self.keep = True
        self._pending: Dict[Tuple[str, int], Dict[str, Any]] = {}

    @staticmethod
    def _select(indices: List[int], layers: Iterable[int], part: str) -> List[int]:
        out = []
        for layer in layers:
            idx = layer + len(indices) if layer < 0 else layer
            if idx not in indices:
                raise UserInputError(f'{part} has layers 0..{len(indices) - 1}, got {layer}')
            out.append(idx)
        return sorted(set(out))

    # -- lifecycle (attach / remove / context manager: CaptureBase) ---------------------------
    def enable(self, keep: bool = True) -> None:
        """Record (or skip recording) on the next forward passes; hooks stay attached."""
        self.keep = keep

    def clear(self) -> None:
        """Forget what was recorded."""
        self.record = AttentionRecord()

    def _restore(self) -> None:
        self._pending = {}

    def _keep(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.keep_grad else t.detach()

    def _attach(self) -> None:
        for key, (_, module) in self.targets.items():
            kind = attention_kind(module)
            if kind == 'mha':
                self._attach_mha(key, module)
            elif kind == 'conditional':
                self._attach_conditional(key, module)
            else:
                self._attach_deformable(key, module)
        pe = getattr(self.model, 'positional_encoding', None)
        if pe is not None:
            self._handles.append(
                pe.register_forward_pre_hook(self._on_pos_encoding, with_kwargs=True))
        head = getattr(self.model, 'bbox_head', None)
        if head is not None:
            self._handles.append(head.register_forward_hook(self._on_head))

    def _attach_mha(self, key, module) -> None:
        inner = module.attn  # nn.MultiheadAttention, called with keyword arguments

        def pre(mod, args, kwargs):
            kwargs = dict(kwargs)
            kwargs['need_weights'] = True
            kwargs['average_attn_weights'] = False
            return args, kwargs

        def post(mod, args, kwargs, output):
            if not self.keep:
                return
            weights = output[1]  # a view of the softmax output that multiplied the values
            self.record.dense[key] = self._keep(weights)
            if self.keep_grad:
                base = weights._base if weights._base is not None else weights
                self.record.graph[key] = base

        self._handles.append(inner.register_forward_pre_hook(pre, with_kwargs=True))
        self._handles.append(inner.register_forward_hook(post, with_kwargs=True))

    def _attach_conditional(self, key, module) -> None:
        heads = num_heads(module)

        def post(mod, args, output):
            if not self.keep:
                return
            bh, lq, lk = output.shape
            self.record.dense[key] = self._keep(output.view(bh // heads, heads, lq, lk))
            if self.keep_grad:
                self.record.graph[key] = output

        self._handles.append(module.attn_drop.register_forward_hook(post))

    def _attach_deformable(self, key, module) -> None:
        pending = self._pending.setdefault(key, {})

        def pre(mod, args, kwargs):
            pending['reference_points'] = kwargs.get('reference_points')
            pending['spatial_shapes'] = kwargs.get('spatial_shapes')

        def on_offsets(mod, args, output):
            pending['offsets'] = output

        def on_weights(mod, args, output):
            pending['logits'] = output

        def post(mod, args, kwargs, output):
            if self.keep:
                self.record.deformable[key] = self._deformable_record(module, pending)
            pending.clear()

        self._handles += [
            module.register_forward_pre_hook(pre, with_kwargs=True),
            module.sampling_offsets.register_forward_hook(on_offsets),
            module.attention_weights.register_forward_hook(on_weights),
            module.register_forward_hook(post, with_kwargs=True),
        ]

    def _deformable_record(self, m, pending) -> DeformableRecord:
        ref = pending['reference_points']
        shapes = pending['spatial_shapes']
        offsets = pending['offsets']
        logits = pending['logits']
        if not m.batch_first:  # (Q, B, C) projections
            offsets = offsets.transpose(0, 1)
            logits = logits.transpose(0, 1)
        bs, nq = offsets.shape[:2]
        heads, levels, points = m.num_heads, m.num_levels, m.num_points
        offsets = offsets.reshape(bs, nq, heads, levels, points, 2)
        weights = logits.reshape(bs, nq, heads, levels * points).softmax(-1)
        weights = weights.view(bs, nq, heads, levels, points)
        if ref.shape[-1] == 2:
            norm = torch.stack([shapes[..., 1], shapes[..., 0]], -1)
            loc = ref[:, :, None, :, None, :] + offsets / norm[None, None, None, :, None, :]
        else:
            loc = (ref[:, :, None, :, None, :2]
                   + offsets / points * ref[:, :, None, :, None, 2:] * 0.5)
        return DeformableRecord(self._keep(loc), self._keep(weights), shapes.detach(),
                                ref[:, :, 0, :2].detach())

    def _on_pos_encoding(self, module, args, kwargs) -> None:
        if not self.keep or self.record.key_shape is not None:
            return  # deformable models call it once per level; keep the first
        mask = args[0] if args else kwargs.get('mask')
        if isinstance(mask, torch.Tensor) and mask.dim() == 3:
            self.record.key_shape = (int(mask.shape[1]), int(mask.shape[2]))
            self.record.key_padding = mask.detach().bool()
            return
        feat = kwargs.get('input', args[1] if len(args) > 1 else None)
        if isinstance(feat, torch.Tensor) and feat.dim() == 4:  # no padding in this batch
            b, _, h, w = feat.shape
            self.record.key_shape = (int(h), int(w))
            self.record.key_padding = torch.zeros(b, h, w, dtype=torch.bool)

    def _on_head(self, module, args, output) -> None:
        if not self.keep:
            return
        cls_scores, bbox_preds = output[0], output[1]
        if cls_scores.dim() == 4:  # (layers, B, Q, C): keep the last decoder layer
            cls_scores, bbox_preds = cls_scores[-1], bbox_preds[-1]
        self.record.head_outputs = (self._keep(cls_scores), self._keep(bbox_preds))
