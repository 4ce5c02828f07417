"""The attention workflow shared by ``tools/attn_vis.py`` and ``AttentionVisHook``."""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch

from ..capture.attention import (AttentionCapture, AttentionRecord, attention_kind,
                                 check_detr_family, find_attention_modules)
from ..methods.attention import (HEAD_FUSIONS, DecoderCrossAttention, DeformableSamplingPoints,
                                 EncoderSelfAttention, QueryDetection, detections_for_queries,
                                 point_to_token)
from ..methods.base import Map2D
from ..methods.relevance import CheferRelevance
from ..render.geometry import ImageGeometry
from ..utils.errors import UserInputError

MODES = ('decoder', 'encoder', 'deformable', 'relevance')


@dataclass
class AttentionOptions:
    """What to draw (the ``tools/attn_vis.py`` flags)."""
    mode: str = 'decoder'
    layers: Optional[Sequence[int]] = None  # None: the last layer
    heads: Optional[Sequence[int]] = None
    head_fusion: str = 'mean'
    points: Sequence[Tuple[float, float]] = field(default_factory=list)
    score_thr: float = 0.3
    max_queries: int = 8
    per_layer: bool = False

    def fusion(self) -> Optional[str]:
        return None if self.head_fusion in (None, 'none') else self.head_fusion


def check_mode(model, options: AttentionOptions) -> None:
    """Fail early (one line) when the model cannot give what the mode draws."""
    check_detr_family(model)
    if options.mode not in MODES:
        raise UserInputError(f'unknown mode {options.mode!r}; choose {", ".join(MODES)}')
    if options.head_fusion not in HEAD_FUSIONS + ('none', None):
        raise UserInputError(f'unknown head fusion {options.head_fusion!r}; choose mean, max, '
                             'min or none')
    modules = find_attention_modules(model)
    cross = {attention_kind(m) for (p, _), (_, m) in modules.items() if p == 'decoder_cross'}
    name = type(model).__name__
    if options.mode in ('decoder', 'relevance') and 'deformable' in cross:
        raise UserInputError(f'--mode {options.mode} needs dense cross-attention; {name} uses '
                             'deformable attention: use --mode deformable')
    if options.mode == 'deformable' and 'deformable' not in cross:
        raise UserInputError(f'--mode deformable needs deformable attention (Deformable DETR, '
                             f'DINO); {name} has dense cross-attention: use --mode decoder')
    if options.mode == 'encoder' and not options.points:
        raise UserInputError('--mode encoder needs reference points: --points X,Y [X,Y ...]')
    part = 'encoder' if options.mode == 'encoder' else 'decoder_cross'
    n = len([1 for p, _ in modules if p == part])
    for layer in options.layers or []:
        if not -n <= layer < n:
            raise UserInputError(f'layer {layer} does not exist; the {part.split("_")[0]} has '
                                 f'layers 0..{n - 1}')


def _layers(options: AttentionOptions, record: AttentionRecord, part: str) -> List[int]:
    have = record.layers(part)
    if not have:
        return []
    wanted = options.layers if options.layers is not None else [-1]
    return [have[layer] if layer < 0 else layer for layer in wanted]


def run_attention(model, data, options: AttentionOptions):
    """One forward (and, for relevance, one batched backward) over a prepared batch.

    Returns:
        ``(samples, detections, columns)``: per image, the predictions, the
        :class:`QueryDetection` s above the threshold (at most ``max_queries``), and per column
        ``(detection_or_point, [Map2D rows])``.
    """
    check_mode(model, options)
    if options.mode == 'relevance':
        result = CheferRelevance(per_layer=options.per_layer,
                                 max_detections=options.max_queries).explain(
                                     model, data, options.score_thr)
        columns = []
        for dets, maps in zip(result.detections, result.maps):
            cols = [(d, m['relevance'] + m['raw'] + m['rollout'])
                    for d, m in list(zip(dets, maps))[:options.max_queries]]
            columns.append(cols)
        return result.samples, [d[:options.max_queries] for d in result.detections], columns
    parts = ('encoder', ) if options.mode == 'encoder' else ('decoder_cross', )
    with AttentionCapture(model, parts=parts) as cap, torch.no_grad():
        samples = model.test_step(data)
    return (samples, ) + build_columns(model, cap.record, samples, options)


def build_columns(model, record: AttentionRecord, samples, options: AttentionOptions):
    """Detections and figure columns from a recorded forward pass."""
    dets = detections_for_queries(model, record, samples, options.score_thr)
    dets = [d[:options.max_queries] for d in dets]
    columns = []
    for b, sample in enumerate(samples):
        geom = ImageGeometry.from_metainfo(sample.metainfo)
        if options.mode == 'encoder':
            columns.append([(tuple(pt), encoder_rows(record, b, pt, geom, options))
                            for pt in options.points])
            continue
        cols = []
        for det in dets[b]:
            rows: List[Map2D] = []
            for layer in _layers(options, record, 'decoder_cross'):
                if options.mode == 'decoder':
                    rows += DecoderCrossAttention(options.heads, options.fusion()).compute(
                        (record, det, layer))
                else:
                    rows += _with_reference(
                        DeformableSamplingPoints(options.heads,
                                                 per_head=options.fusion() is None).compute(
                            (record, 'decoder_cross', layer, b, det.query, geom)),
                        record.deformable[('decoder_cross', layer)].references[b, det.query],
                        geom)
            cols.append((det, rows))
        columns.append(cols)
    return dets, columns


def encoder_rows(record: AttentionRecord, b: int, point, geom: ImageGeometry,
                 options: AttentionOptions) -> List[Map2D]:
    rows: List[Map2D] = []
    for layer in _layers(options, record, 'encoder'):
        if ('encoder', layer) in record.dense:
            rows += EncoderSelfAttention(options.heads, options.fusion()).compute(
                (record, b, point, geom, layer))
        else:
            rec = record.deformable[('encoder', layer)]
            h0, w0 = (int(v) for v in rec.spatial_shapes[0])
            row, col = point_to_token(point, geom, (h0, w0))
            maps = DeformableSamplingPoints(options.heads,
                                            per_head=options.fusion() is None).compute(
                (record, 'encoder', layer, b, row * w0 + col, geom))
            for m in maps:
                m.meta['reference'] = tuple(point)
            rows += maps
    return rows


def _with_reference(maps: List[Map2D], ref: torch.Tensor, geom: ImageGeometry) -> List[Map2D]:
    in_h, in_w = geom.input_shape
    x0, y0, x1, y1 = geom.content_box
    ori_h, ori_w = geom.ori_shape
    x = (float(ref[0]) * in_w - x0) * ori_w / (x1 - x0)
    y = (float(ref[1]) * in_h - y0) * ori_h / (y1 - y0)
    for m in maps:
        m.meta['reference'] = (x, y)
    return maps


def parse_points(values: Optional[Sequence[str]]) -> List[Tuple[float, float]]:
    """``['120,80', '30,40']`` -> ``[(120.0, 80.0), (30.0, 40.0)]``."""
    points = []
    for v in values or []:
        try:
            x, y = (float(t) for t in str(v).split(','))
        except ValueError:
            raise UserInputError(f'bad point {v!r}: write X,Y in original-image pixels') from None
        points.append((x, y))
    return points


def figure_title(options: AttentionOptions, name: str) -> str:
    what = {'decoder': 'decoder cross-attention', 'encoder': 'encoder self-attention',
            'deformable': 'deformable sampling points', 'relevance':
            'relevance (Chefer et al.) | raw attention | rollout'}[options.mode]
    fusion = '' if options.mode == 'relevance' else f', heads: {options.head_fusion}'
    return f'{name}: {what}{fusion}'


def no_detection_note(score_thr: float) -> str:
    return f'no detections above score_thr={score_thr}'


def points_in_image(points, shape) -> None:
    h, w = shape[:2]
    for x, y in points:
        if not (0 <= x < w and 0 <= y < h):
            raise UserInputError(f'point {x:g},{y:g} is outside the image ({w}x{h})')


__all__ = [
    'AttentionOptions', 'MODES', 'check_mode', 'run_attention', 'build_columns',
    'parse_points', 'figure_title', 'no_detection_note', 'points_in_image', 'QueryDetection'
]
