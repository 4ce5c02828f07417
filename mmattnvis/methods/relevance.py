"""Relevance maps for DETR-style detectors (dense attention).

Chefer, Gur and Wolf, "Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers", ICCV 2021, rules for an encoder-decoder detector:

* each attention map is replaced by its gradient-weighted, head-averaged positive part
  ``A_bar = mean_h (grad_A * A)^+``;
* encoder self-attention: ``R_ii += A_bar @ R_ii`` (``R_ii`` starts as the identity);
* decoder self-attention: ``R_qq += A_bar @ R_qq`` and ``R_qi += A_bar @ R_qi``;
* decoder cross-attention: ``R_qi += norm(R_qq)^T @ A_bar @ norm(R_ii)``, where ``norm`` removes
  the identity (the residual), scales each row to sum 1 and adds the identity back.

The relevance of detection ``d`` over the image tokens is the row ``R_qi[query(d)]``. All
detections of a batch are explained with one forward pass and one batched backward
(``torch.autograd.grad(..., is_grads_batched=True)``).

Baselines, as in Chefer et al.'s DETR code: the raw last-layer cross-attention (head mean) and
attention rollout (``generate_rollout``): the encoder self-attention rolled out (``R_ii``), the
decoder self-attention rolled out (``R_qq``), combined with the last layer's head-mean
cross-attention ``A_qi`` as ``R_qq^T @ A_qi @ R_ii`` (:func:`chefer_rollout`).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..capture.attention import AttentionCapture, AttentionRecord
from ..registry import METHODS
from ..structures import Map2D
from ..structures.detection import Detection
from ..utils.errors import UserInputError
from .attention import detections_for_queries, gradient_weighted
from .base import Explainer
from .rollout import attention_rollout

Key = Tuple[str, int]


def normalize_residual(rel: torch.Tensor) -> torch.Tensor:
    """Remove the identity, scale rows to sum 1 (rows summing to 0 stay 0), add it back."""
    eye = torch.eye(rel.shape[-1], dtype=rel.dtype, device=rel.device)
    hat = rel - eye
    sums = hat.sum(-1, keepdim=True)
    hat = torch.where(sums > 0, hat / sums.clamp_min(1e-12), torch.zeros_like(hat))
    return hat + eye


def chefer_propagate(enc: Sequence[torch.Tensor], dec_self: Sequence[torch.Tensor],
                     dec_cross: Sequence[torch.Tensor], keep_layers: bool = False
                     ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Run the rules on already gradient-weighted maps (each ``(N, M)``, in forward order).

    Returns:
        ``R_qi`` ``(queries, image_tokens)`` and, with ``keep_layers``, ``R_qi`` after each
        decoder layer.
    """
    n_img = dec_cross[0].shape[-1]
    n_q = dec_cross[0].shape[0]
    like = dec_cross[0]
    r_ii = torch.eye(n_img, dtype=like.dtype, device=like.device)
    for a in enc:
        r_ii = r_ii + a @ r_ii
    r_qq = torch.eye(n_q, dtype=like.dtype, device=like.device)
    r_qi = torch.zeros(n_q, n_img, dtype=like.dtype, device=like.device)
    per_layer = []
    norm_ii = normalize_residual(r_ii)
    for i, cross in enumerate(dec_cross):
        if i < len(dec_self):
            r_qq = r_qq + dec_self[i] @ r_qq
            r_qi = r_qi + dec_self[i] @ r_qi
        r_qi = r_qi + normalize_residual(r_qq).t() @ cross @ norm_ii
        if keep_layers:
            per_layer.append(r_qi.clone())
    return r_qi, per_layer


def chefer_rollout(enc: Sequence[torch.Tensor], dec_self: Sequence[torch.Tensor],
                   cross_last: torch.Tensor) -> torch.Tensor:
    """Chefer et al.'s rollout baseline for an encoder-decoder detector.

    Args:
        enc: Encoder self-attention per layer, ``(heads, N, N)``, forward order.
        dec_self: Decoder self-attention per layer, ``(heads, Q, Q)``, forward order.
        cross_last: The last decoder layer's cross-attention, ``(heads, Q, N)``.

    Returns:
        ``(Q, N)``: ``rollout(dec_self)^T @ mean_h(cross_last) @ rollout(enc)``, where each
        rollout averages heads, adds the identity, renormalises rows and multiplies later layers
        on the left; an empty stack rolls out to the identity.
    """
    cross = cross_last.mean(0)
    n_q, n_img = cross.shape
    r_ii = attention_rollout(enc, 'mean', keep_first=False) if enc else torch.eye(
        n_img, dtype=cross.dtype, device=cross.device)
    r_qq = attention_rollout(dec_self, 'mean', keep_first=False) if dec_self else torch.eye(
        n_q, dtype=cross.dtype, device=cross.device)
    return r_qq.t() @ (cross @ r_ii)


def batched_attention_grads(targets: torch.Tensor, tensors: Sequence[torch.Tensor],
                            batched: bool = True) -> List[torch.Tensor]:
    """Gradients of each target w.r.t. each tensor, stacked as ``(targets, *tensor.shape)``.

    ``batched=True`` does one backward for all targets (``is_grads_batched``); ``False`` does
    one backward per target (the reference implementation's way).
    """
    n = targets.numel()
    if batched:
        eye = torch.eye(n, dtype=targets.dtype, device=targets.device)
        grads = torch.autograd.grad(targets, list(tensors), grad_outputs=eye,
                                    is_grads_batched=True, allow_unused=True)
        return [torch.zeros((n, ) + tuple(t.shape)) if g is None else g
                for g, t in zip(grads, tensors)]
    per = [torch.autograd.grad(targets[i], list(tensors), retain_graph=True, allow_unused=True)
           for i in range(n)]
    return [torch.stack([torch.zeros_like(t) if p[j] is None else p[j] for p in per])
            for j, t in enumerate(tensors)]


def _to_heads(t: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B * heads, L, S)`` -> ``(B, heads, L, S)``."""
    return t.reshape(batch, t.shape[0] // batch, *t.shape[1:])


class RelevanceResult:
    """Per image, per detection: ``relevance`` (and per-layer), ``raw``, ``rollout`` maps."""

    def __init__(self, samples, detections, maps, record) -> None:
        self.samples = samples
        self.detections: List[List[Detection]] = detections
        self.maps: List[List[Dict[str, List[Map2D]]]] = maps
        self.record: AttentionRecord = record


@METHODS.register_module()
class CheferRelevance(Explainer):
    """Chefer et al.'s relevance for every detection of a batch (dense-attention DETRs).

    Args:
        per_layer: Also return the relevance after each decoder layer.
        batched: One batched backward for all detections (default) or one per detection.
        max_detections: Explain at most this many detections per image (highest scores).
    """
    name = 'relevance'

    def __init__(self, per_layer: bool = False, batched: bool = True,
                 max_detections: Optional[int] = None) -> None:
        self.per_layer = per_layer
        self.batched = batched
        self.max_detections = max_detections

    def explain(self, model, data: Optional[dict] = None, score_thr: float = 0.3,
                topk: int = 10, detected=None) -> RelevanceResult:
        """One forward, one backward: relevance, raw-attention and rollout maps (of at most
        ``max_detections`` detections; ``topk`` and ``detected`` are not used: relevance needs
        its own forward with the attention graph kept)."""
        if data is None:
            raise ValueError('CheferRelevance.explain needs the prepared batch (data)')
        with AttentionCapture(model, keep_grad=True) as cap, torch.enable_grad():
            processed = model.data_preprocessor(data, False)
            samples = model.predict(processed['inputs'], processed['data_samples'])
        record = cap.record
        if record.deformable:
            raise UserInputError(
                'relevance needs dense attention (DETR, Conditional DETR, DAB-DETR); '
                f'{type(model).__name__} uses deformable attention, use --mode deformable')
        dets = detections_for_queries(model, record, samples, score_thr)
        if self.max_detections is not None:  # the highest-scoring ones (predictions are sorted)
            dets = [d[:self.max_detections] for d in dets]
        flat = [d for per_img in dets for d in per_img]
        maps: List[List[Dict[str, List[Map2D]]]] = [[] for _ in dets]
        if not flat:
            return RelevanceResult(samples, dets, maps, record)
        cls_scores = record.head_outputs[0]  # type: ignore[index]  # set by the head's hook
        targets = torch.stack([cls_scores[d.image, d.query, d.label] for d in flat])
        keys = [k for k in sorted(record.graph, key=_order)]
        grad_list = batched_attention_grads(targets, [record.graph[k] for k in keys],
                                            self.batched)
        batch = len(samples)
        attn = {k: _to_heads(record.graph[k].detach(), batch) for k in keys}
        grads = dict(zip(keys, grad_list))
        enc_keys = [k for k in keys if k[0] == 'encoder']
        self_keys = [k for k in keys if k[0] == 'decoder_self']
        cross_keys = [k for k in keys if k[0] == 'decoder_cross']
        h, w = record.key_shape  # type: ignore[misc]  # set with the dense attention
        rollouts = {}
        for t, det in enumerate(flat):
            b = det.image

            def gw(k):
                return gradient_weighted(attn[k][b], _to_heads(grads[k][t], batch)[b])

            r_qi, layers = chefer_propagate([gw(k) for k in enc_keys], [gw(k) for k in self_keys],
                                            [gw(k) for k in cross_keys], self.per_layer)
            meta = {'query': det.query, 'label': det.label, 'score': det.score}
            rel = [Map2D(r_qi[det.query].reshape(h, w).cpu().numpy(), 'relevance', meta)]
            if self.per_layer:
                rel += [Map2D(r[det.query].reshape(h, w).cpu().numpy(), f'relevance L{i}', meta)
                        for i, r in zip([k[1] for k in cross_keys], layers)]
            raw = attn[cross_keys[-1]][b, :, det.query].mean(0)
            if b not in rollouts:
                rollouts[b] = chefer_rollout([attn[k][b] for k in enc_keys],
                                             [attn[k][b] for k in self_keys],
                                             attn[cross_keys[-1]][b])
            rollout = rollouts[b][det.query]
            maps[b].append({
                'relevance': rel,
                'raw': [Map2D(raw.reshape(h, w).cpu().numpy(), 'raw attention (last, mean)',
                              meta)],
                'rollout': [Map2D(rollout.reshape(h, w).cpu().numpy(), 'rollout (Chefer)',
                                  meta)],
            })
        return RelevanceResult(samples, dets, maps, record)


def _order(key: Key) -> Tuple[int, int]:
    return ({'encoder': 0, 'decoder_self': 1, 'decoder_cross': 1}[key[0]], key[1])
