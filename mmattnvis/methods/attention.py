"""Attention maps of DETR-family detectors, per detected query, layer and head."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..capture.attention import AttentionRecord
from ..registry import METHODS
from ..structures import ImageGeometry, Map2D, infer_stride
from ..structures.detection import Detection
from ..utils.errors import UserInputError
from ..utils.validate import check_heads
from .base import AttentionMaps

HEAD_FUSIONS = ('mean', 'max', 'min')


def detections_for_queries(model, record: AttentionRecord, samples: Sequence,
                           score_thr: float = 0.3) -> List[List[Detection]]:
    """Map each prediction with score > ``score_thr`` to its decoder query.

    Repeats the selection of MMDet's ``DETRHead.predict_by_feat_single`` (softmax: best class per
    query then top-k queries; sigmoid: top-k over queries x classes) on the captured last-layer
    logits, so the i-th selection is the i-th entry of ``pred_instances``; the labels and scores
    are checked against them.
    """
    if record.head_outputs is None:
        raise RuntimeError('the bbox head was not called; nothing to match detections with')
    cls_scores = record.head_outputs[0].detach()
    head = model.bbox_head
    max_per_img = int(head.test_cfg.get('max_per_img', len(cls_scores[0]))) \
        if getattr(head, 'test_cfg', None) else cls_scores.shape[1]
    sigmoid = bool(getattr(head.loss_cls, 'use_sigmoid', False))
    out: List[List[Detection]] = []
    for b, sample in enumerate(samples):
        logits = cls_scores[b]
        num_classes = logits.shape[-1]
        if sigmoid:
            scores, idx = logits.sigmoid().reshape(-1).topk(min(max_per_img, logits.numel()))
            labels = idx % num_classes
            queries = torch.div(idx, num_classes, rounding_mode='floor')
        else:
            best, labels_all = F.softmax(logits, dim=-1)[..., :-1].max(-1)
            scores, queries = best.topk(min(max_per_img, len(best)))
            labels = labels_all[queries]
        pred = sample.pred_instances
        # With relevance / gradient rollout the predictions are still in the graph: read
        # detached values (no grad-to-scalar conversions).
        pred_scores, pred_labels = pred.scores.detach().cpu(), pred.labels.detach().cpu()
        n = min(len(pred), len(scores))
        if not (torch.equal(pred_labels[:n], labels[:n].cpu()) and torch.allclose(
                pred_scores[:n], scores[:n].detach().cpu(), atol=1e-6)):
            raise RuntimeError('captured head outputs do not reproduce the predictions')
        dets = []
        for r in range(n):
            if float(pred_scores[r]) > score_thr:
                dets.append(Detection(b, r, int(queries[r]), int(pred_labels[r]),
                                           float(pred_scores[r]),
                                           pred.bboxes[r].detach().cpu().numpy().copy()))
        out.append(dets)
    return out


def fuse_heads(maps: torch.Tensor, fusion: Optional[str]) -> torch.Tensor:
    """``(heads, ...)`` -> ``(1, ...)`` by ``mean``/``max``/``min``; ``None`` keeps every head."""
    if fusion is None or fusion == 'none':
        return maps
    if fusion not in HEAD_FUSIONS:
        raise UserInputError(f'unknown head fusion {fusion!r}; choose mean, max, min or none')
    if fusion == 'mean':
        return maps.mean(0, keepdim=True)
    if fusion == 'max':
        return maps.max(0, keepdim=True).values
    return maps.min(0, keepdim=True).values


def gradient_weighted(attn: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``mean_h (grad * attn)^+``: heads ``(heads, ...)`` fused by their positive gradient-weighted
    mean (Chefer et al. relevance, gradient rollout)."""
    return (grad * attn).clamp(min=0).mean(0)


def _select_heads(maps: torch.Tensor, heads: Optional[Sequence[int]]) -> Tuple[torch.Tensor,
                                                                               List[int]]:
    n = maps.shape[0]
    if heads is None:
        return maps, list(range(n))
    idx = _head_indices(heads, n)
    return maps[idx], idx


def _head_indices(heads: Sequence[int], n: int) -> List[int]:
    """``heads`` (negative from the end) as indices into ``n`` heads; a one-line error for a
    head that does not exist."""
    check_heads(heads, n)
    return [h % n for h in heads]


def _grid_maps(vectors: torch.Tensor, key_shape: Tuple[int, int], labels: List[str],
               meta: dict) -> List[Map2D]:
    h, w = key_shape
    vectors = vectors.detach().float().cpu()
    return [Map2D(v.reshape(h, w).numpy(), lab, dict(meta)) for v, lab in zip(vectors, labels)]


@METHODS.register_module()
class DecoderCrossAttention(AttentionMaps):
    """Cross-attention of one detected query over the image tokens, per head or fused.

    ``compute((record, detection, layer))`` -> maps on the feature grid (align them with
    :class:`ImageGeometry` like feature maps).
    """
    name = 'decoder'

    def __init__(self, heads: Optional[Sequence[int]] = None, fusion: Optional[str] = 'mean'):
        self.heads = heads
        self.fusion = fusion

    def compute(self, source) -> List[Map2D]:
        record, det, layer = source
        key = ('decoder_cross', layer)
        if key not in record.dense:
            raise UserInputError(f'no dense cross-attention recorded for decoder layer {layer}')
        attn = record.dense[key][det.image, :, det.query]  # (heads, HW)
        attn, idx = _select_heads(attn, self.heads)
        fused = fuse_heads(attn, self.fusion)
        one = fused.shape[0] == 1 and self.fusion not in (None, 'none')
        labels = [f'L{layer} {self.fusion}'] if one else [f'L{layer} h{h}' for h in idx]
        maps = _grid_maps(fused, record.key_shape, labels, {'layer': layer, 'query': det.query})
        for m, h in zip(maps, [self.fusion] if one else idx):
            m.meta['head'] = h  # a head index, or the fusion (the report's layer x head grid)
        return maps


DIRECTIONS = ('to', 'from')
DIRECTION_TITLES = {'to': 'attention TO point', 'from': 'attends FROM point'}


def token_stride(geometry: ImageGeometry, grid: Tuple[int, int]) -> Optional[int]:
    """Stride of a feature grid over the network input (``None``: not a strided grid)."""
    return infer_stride(geometry.input_shape, grid)


def point_to_token(xy: Sequence[float], geometry: ImageGeometry, grid: Tuple[int, int],
                   stride: Optional[int] = None) -> Tuple[int, int]:
    """Feature-grid cell (row, col) under an original-image point.

    Token ``j`` covers input pixels ``[s * j, s * (j + 1))`` for the backbone stride ``s``
    (given, or inferred from the input and grid sizes), so the point goes through the image
    geometry to input pixels and then ``x // s`` (the DETR notebook's rule). A grid that is not
    strided falls back to ``floor(x * w / W)``.
    """
    x_in, y_in = geometry.image_to_input(xy)
    h, w = grid
    stride = stride or token_stride(geometry, grid)
    if stride:
        col, row = np.floor(x_in / stride), np.floor(y_in / stride)
    else:
        in_h, in_w = geometry.input_shape
        col, row = np.floor(x_in * w / in_w), np.floor(y_in * h / in_h)
    return int(np.clip(row, 0, h - 1)), int(np.clip(col, 0, w - 1))


def token_box(token: Tuple[int, int], geometry: ImageGeometry, grid: Tuple[int, int],
              stride: Optional[int] = None) -> Tuple[float, float, float, float]:
    """Original-image box ``(x0, y0, x1, y1)`` of the input pixels a grid cell covers."""
    row, col = token
    stride = stride or token_stride(geometry, grid)
    if stride:
        sx = sy = float(stride)
    else:
        sy = geometry.input_shape[0] / grid[0]
        sx = geometry.input_shape[1] / grid[1]
    x0, y0 = geometry.input_to_image((col * sx, row * sy))
    x1, y1 = geometry.input_to_image(((col + 1) * sx, (row + 1) * sy))
    return x0, y0, x1, y1


@METHODS.register_module()
class EncoderSelfAttention(AttentionMaps):
    """Encoder self-attention at the token under a reference point (original-image pixels).

    ``direction='to'`` (default, the DETR notebook's ``sattn[..., y, x]``): the column, how much
    every token attends to the point's token; ``'from'``: the row, what the point's token
    attends to. ``compute((record, image_index, (x, y), geometry, layer))``.
    """
    name = 'encoder'

    def __init__(self, heads: Optional[Sequence[int]] = None, fusion: Optional[str] = 'mean',
                 direction: str = 'to'):
        if direction not in DIRECTIONS:
            raise UserInputError(f'unknown direction {direction!r}; choose to or from')
        self.heads = heads
        self.fusion = fusion
        self.direction = direction

    def compute(self, source) -> List[Map2D]:
        record, b, xy, geometry, layer = source
        key = ('encoder', layer)
        if key not in record.dense:
            raise UserInputError(f'no dense self-attention recorded for encoder layer {layer}')
        stride = token_stride(geometry, record.key_shape)
        row, col = point_to_token(xy, geometry, record.key_shape, stride)
        token = row * record.key_shape[1] + col
        dense = record.dense[key][b]  # (heads, queries, keys)
        attn = dense[:, :, token] if self.direction == 'to' else dense[:, token, :]
        attn, idx = _select_heads(attn, self.heads)
        fused = fuse_heads(attn, self.fusion)
        what = self.direction.upper()
        labels = ([f'L{layer} {self.fusion} {what}'] if fused.shape[0] == 1 and self.fusion not in
                  (None, 'none') else [f'L{layer} h{h} {what}' for h in idx])
        return _grid_maps(fused, record.key_shape, labels,
                          {'layer': layer, 'token': (row, col), 'stride': stride,
                           'direction': self.direction, 'reference': tuple(xy),
                           'token_box': token_box((row, col), geometry, record.key_shape,
                                                  stride)})


@METHODS.register_module()
class DeformableSamplingPoints(AttentionMaps):
    """Sampling locations and weights of a deformable-attention query.

    ``compute((record, part, layer, image_index, query_index, geometry))`` -> one :class:`Map2D`
    per head (or one for all heads) whose ``meta['points']`` is an ``(N, 5)`` array of
    ``x, y`` (original-image pixels), ``weight``, ``level``, ``head``; ``data`` is the weights
    splatted on the finest level's grid.
    """
    name = 'deformable'

    def __init__(self, heads: Optional[Sequence[int]] = None, per_head: bool = False):
        self.heads = heads
        self.per_head = per_head

    def compute(self, source) -> List[Map2D]:
        record, part, layer, b, q, geometry = source
        rec = record.deformable.get((part, layer))
        if rec is None:
            raise UserInputError(f'no deformable attention recorded for {part} layer {layer}')
        loc = rec.locations[b, q].detach().float().cpu()  # (heads, levels, points, 2)
        wts = rec.weights[b, q].detach().float().cpu()  # (heads, levels, points)
        n_heads, n_levels, n_points = wts.shape
        # the same rule as the dense modes (_select_heads): a head that does not exist is an error
        heads = list(range(n_heads)) if self.heads is None else _head_indices(self.heads, n_heads)
        in_h, in_w = geometry.input_shape
        ori_h, ori_w = geometry.ori_shape
        x0, y0, x1, y1 = geometry.content_box
        hh, ll, pp = torch.meshgrid(torch.arange(n_heads), torch.arange(n_levels),
                                    torch.arange(n_points), indexing='ij')
        x_in = loc[..., 0] * in_w
        y_in = loc[..., 1] * in_h
        x = (x_in - x0) * ori_w / (x1 - x0)
        y = (y_in - y0) * ori_h / (y1 - y0)
        table = torch.stack([x, y, wts, ll.float(), hh.float()], -1).reshape(-1, 5).numpy()
        gh, gw = (int(v) for v in rec.spatial_shapes[0])
        groups = [[h] for h in heads] if self.per_head else [heads]
        maps = []
        for group in groups:
            pts = table[np.isin(table[:, 4], group)]
            grid = np.zeros((gh, gw), np.float32)
            cols = np.clip((loc[group][..., 0].reshape(-1) * gw).long().numpy(), 0, gw - 1)
            rows = np.clip((loc[group][..., 1].reshape(-1) * gh).long().numpy(), 0, gh - 1)
            np.add.at(grid, (rows, cols), wts[group].reshape(-1).numpy())
            label = (f'L{layer} h{group[0]}' if len(group) == 1 else f'L{layer} all heads'
                     if len(group) == n_heads else
                     f'L{layer} heads {",".join(str(h) for h in group)} together')
            maps.append(Map2D(grid, label, {'points': pts, 'layer': layer, 'query': q,
                                            'head': group[0] if len(group) == 1 else 'all'}))
        return maps
