"""Switch attention heads off, and restore the model exactly afterwards.

A head's contribution enters the layer output only through its slice of the output projection's
input (heads are concatenated head-major before ``out_proj`` / ``output_proj`` in every MMDet /
mmcv attention). Zeroing those weight columns removes exactly that head's contribution; the
original columns are copied back on exit, also when an exception is raised.
"""
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import torch
import torch.nn as nn

from ..capture.attention import attention_kind, find_attention_modules, num_heads
from ..structures.boxes import box_iou
from ..utils.errors import UserInputError

HeadKey = Tuple[str, int]


def output_projection(module: Any) -> nn.Linear:
    """The linear layer that mixes the concatenated heads of an attention module."""
    kind = attention_kind(module)
    if kind == 'mha':
        return module.attn.out_proj
    if kind == 'conditional':
        return module.out_proj
    if kind == 'deformable':
        return module.output_proj
    raise UserInputError(f'{type(module).__name__} is not a supported attention module')


class HeadAblation:
    """Context manager that turns off ``{(part, layer): [heads]}`` of a DETR-family model.

    Example:
        >>> with HeadAblation(model, {('decoder_cross', 5): [0, 3]}):
        ...     results = model.test_step(data)

    Args:
        model: An MMDet DETR-family detector.
        heads: Parts are ``encoder``, ``decoder_self``, ``decoder_cross``; layers and heads may be
            negative (counted from the end).
    """

    def __init__(self, model: nn.Module, heads: Dict[HeadKey, Iterable[int]]) -> None:
        modules = find_attention_modules(model)
        self.plan: List[Tuple[nn.Linear, List[int], int]] = []
        for (part, layer), head_ids in heads.items():
            layers = sorted(i for p, i in modules if p == part)
            if not layers:
                raise UserInputError(f'the model has no {part} attention')
            li = layer + len(layers) if layer < 0 else layer
            if li not in layers:
                raise UserInputError(f'{part} has layers 0..{len(layers) - 1}, got {layer}')
            module = modules[(part, li)][1]
            n = num_heads(module)
            ids = sorted({h % n for h in head_ids if -n <= h < n})
            if len(ids) != len(set(head_ids)):
                raise UserInputError(f'{part} layer {li} has heads 0..{n - 1}, got '
                                     f'{sorted(set(head_ids))}')
            proj = output_projection(module)
            self.plan.append((proj, ids, proj.in_features // n))
        self._saved: List[Tuple[torch.Tensor, List[Tuple[int, torch.Tensor]]]] = []

    def __enter__(self) -> 'HeadAblation':
        try:
            with torch.no_grad():
                for proj, ids, dim in self.plan:
                    kept = [(h, proj.weight[:, h * dim:(h + 1) * dim].clone()) for h in ids]
                    self._saved.append((proj.weight, kept))
                    for h in ids:
                        proj.weight[:, h * dim:(h + 1) * dim] = 0
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        with torch.no_grad():
            for weight, kept in reversed(self._saved):
                dim = kept[0][1].shape[1] if kept else 0
                for h, cols in kept:
                    weight[:, h * dim:(h + 1) * dim] = cols
        self._saved = []


def all_heads(model: nn.Module, part: str = 'decoder_cross') -> Dict[int, int]:
    """``{layer: num_heads}`` of one part."""
    return {i: num_heads(m) for (p, i), (_, m) in find_attention_modules(model).items()
            if p == part}


def first_k_heads(model: nn.Module, k: int, part: str = 'decoder_cross') -> Dict[HeadKey,
                                                                                 Sequence[int]]:
    """Heads ``0..k-1`` in every layer of ``part``."""
    return {(part, layer): list(range(min(k, n))) for layer, n in all_heads(model, part).items()}


def single_head(model: nn.Module, head: int, part: str = 'decoder_cross') -> Dict[HeadKey,
                                                                                 Sequence[int]]:
    """Head ``head`` in every layer of ``part``."""
    return {(part, layer): [head] for layer in all_heads(model, part)}


def match_detections(base_boxes: torch.Tensor, base_labels: torch.Tensor,
                     other_boxes: torch.Tensor, other_labels: torch.Tensor,
                     iou_thr: float = 0.5) -> List[Tuple[int, int]]:
    """Greedy one-to-one matching (inputs sorted by score, best first) of same-class boxes with
    IoU >= ``iou_thr``; returns ``(base_index, other_index)`` pairs."""
    if len(base_boxes) == 0 or len(other_boxes) == 0:
        return []
    iou = box_iou(base_boxes.float(), other_boxes.float())
    iou[base_labels[:, None] != other_labels[None, :]] = -1
    pairs, used = [], set()
    for i in range(len(base_boxes)):
        order = torch.argsort(iou[i], descending=True).tolist()
        for j in order:
            if iou[i, j] < iou_thr:
                break
            if j not in used:
                used.add(j)
                pairs.append((i, j))
                break
    return pairs


def compare_detections(base, other, iou_thr: float = 0.5) -> Dict[str, float]:
    """Kept / lost / gained detections and score changes between two ``InstanceData``."""
    pairs = match_detections(base.bboxes, base.labels, other.bboxes, other.labels, iou_thr)
    deltas = [float(other.scores[j] - base.scores[i]) for i, j in pairs]
    return {
        'detections': len(other),
        'kept': len(pairs),
        'lost': len(base) - len(pairs),
        'gained': len(other) - len(pairs),
        'mean_score_change': sum(deltas) / len(deltas) if deltas else 0.0,
        'min_score_change': min(deltas) if deltas else 0.0,
    }
