"""The attention workflow shared by ``tools/attn_vis.py`` and ``AttentionVisHook``."""
import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch

from ..capture.attention import (
    AttentionCapture,
    AttentionRecord,
    attention_kind,
    check_detr_family,
    find_attention_modules,
    num_heads,
)
from ..methods.attention import (
    DIRECTIONS,
    HEAD_FUSIONS,
    DecoderCrossAttention,
    DeformableSamplingPoints,
    EncoderSelfAttention,
    detections_for_queries,
    point_to_token,
    token_box,
    token_stride,
)
from ..methods.relevance import CheferRelevance, _to_heads, batched_attention_grads
from ..methods.rollout import TokenRollout, attention_rollout, rollout_label
from ..structures import Detection, ImageGeometry, Map2D
from ..utils.errors import UserInputError
from ..utils.validate import check_heads
from .attention_titles import figure_title, heads_text, no_detection_note  # noqa: F401
from .options import OptionError
from .run import RunOptions

MODES = ('decoder', 'encoder', 'deformable', 'relevance', 'rollout')


@dataclass
class AttentionOptions(RunOptions):
    """What to draw (the ``tools/attn_vis.py`` flags); the model-dependent checks are
    :func:`check_mode`'s."""
    mode: str = 'decoder'
    layers: Optional[Sequence[int]] = None  # None: the last layer
    heads: Optional[Sequence[int]] = None
    head_fusion: str = 'mean'
    points: Sequence[Tuple[float, float]] = field(default_factory=list)
    score_thr: float = 0.3
    max_queries: int = 8
    per_layer: bool = False
    direction: Optional[str] = None  # encoder / rollout: 'to' (default) or 'from' the point
    discard_ratio: float = 0.0  # rollout
    gradient: bool = False  # rollout: gradient rollout per detection

    def validate(self) -> None:
        if self.mode not in MODES:
            raise OptionError('mode', f'unknown mode {self.mode!r}; choose {", ".join(MODES)}')
        if not isinstance(self.max_queries, int) or self.max_queries < 1:
            raise OptionError('max_queries', f'must be an integer >= 1, got '
                              f'{self.max_queries!r}')

    def fusion(self) -> Optional[str]:
        return None if self.head_fusion in (None, 'none') else self.head_fusion

    def point_direction(self) -> str:
        return self.direction or 'to'


@contextlib.contextmanager
def quiet_library_warnings() -> Iterator[None]:
    """Silence warnings MMDet's DETR code raises on every first call with current torch (its
    ``torch.meshgrid`` without ``indexing``, whose default ``'ij'`` is what it means)."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=r'torch\.meshgrid: in an upcoming release',
                                category=UserWarning)
        yield


def check_mode(model, options: AttentionOptions) -> None:
    """Fail early (one line) when the model cannot give what the mode draws."""
    check_detr_family(model)
    if options.mode not in MODES:
        raise OptionError('mode', f'unknown mode {options.mode!r}; choose {", ".join(MODES)}')
    if options.head_fusion not in HEAD_FUSIONS + ('none', None):
        raise OptionError(
            'head_fusion', f'unknown head fusion {options.head_fusion!r}; choose mean, max, '
                             'min or none')
    modules = find_attention_modules(model)
    cross = {attention_kind(m) for (p, _), (_, m) in modules.items() if p == 'decoder_cross'}
    name = type(model).__name__
    if options.mode in ('decoder', 'relevance') and 'deformable' in cross:
        raise OptionError('mode', f'--mode {options.mode} needs dense cross-attention; {name} uses '
                             'deformable attention: use --mode deformable')
    if options.mode == 'deformable' and 'deformable' not in cross:
        raise OptionError('mode', f'--mode deformable needs deformable attention (Deformable DETR, '
                             f'DINO); {name} has dense cross-attention: use --mode decoder')
    if options.mode == 'encoder' and not options.points:
        raise OptionError('points', '--mode encoder needs reference points: --points X,Y [X,Y ...]')
    if options.direction not in DIRECTIONS + (None, ):
        raise OptionError(
            'direction', f'unknown direction {options.direction!r}; choose to or from')
    enc = {attention_kind(m) for (p, _), (_, m) in modules.items() if p == 'encoder'}
    if options.mode == 'encoder' and options.direction == 'to' and 'deformable' in enc:
        raise OptionError(
            'direction', f'--direction to needs dense encoder self-attention; {name} samples '
                             'deformable points FROM the point: use --direction from')
    if options.mode == 'rollout':
        _check_rollout(options, enc, name)
    elif options.gradient or options.discard_ratio:
        raise OptionError('gradient', '--gradient and --discard-ratio apply to --mode rollout')
    part = 'encoder' if options.mode in ('encoder', 'rollout') else 'decoder_cross'
    n = len([1 for p, _ in modules if p == part])
    for layer in options.layers or []:
        if not -n <= layer < n:
            raise OptionError(
                'layers', f'layer {layer} does not exist; the {part.split("_")[0]} has '
                                 f'layers 0..{n - 1}')
    _check_heads(options, modules, part)


def _check_heads(options: AttentionOptions, modules, part: str) -> None:
    """``heads`` exist in the attention the mode reads, checked before anything runs (also when
    nothing is detected); heads count from 0 (negative indices are refused)."""
    if not options.heads:
        return
    counts = {num_heads(m) for (p, _), (_, m) in modules.items() if p == part
              and hasattr(m, 'num_heads')}
    if len(counts) != 1:
        return
    try:
        check_heads(options.heads, counts.pop(), negative=False)
    except UserInputError as err:
        raise OptionError('heads', str(err)) from None


def _check_rollout(options: AttentionOptions, enc_kinds, name: str) -> None:
    if not enc_kinds or enc_kinds - {'mha'}:
        raise OptionError(
            'mode', f'--mode rollout needs dense token-to-token encoder self-attention '
                             f'(DETR, Conditional DETR, DAB-DETR); {name} has '
                             f'{"deformable" if "deformable" in enc_kinds else "no"} encoder '
                             'attention')
    if options.fusion() is None and not options.gradient:
        raise OptionError(
            'head_fusion', '--mode rollout fuses the heads: choose --head-fusion mean, max or '
                             'min')
    if not 0.0 <= options.discard_ratio < 1.0:
        raise OptionError(
            'discard_ratio', f'--discard-ratio must be in [0, 1), got {options.discard_ratio:g}')
    if options.layers is not None:
        raise OptionError('layers', '--mode rollout runs through every encoder layer; leave out '
                             '--layers')


def _layers(options: AttentionOptions, record: AttentionRecord, part: str) -> List[int]:
    have = record.layers(part)
    if not have:
        return []
    wanted = options.layers if options.layers is not None else [-1]
    return [have[layer] if layer < 0 else layer for layer in wanted]


def run_attention(model, data, options: AttentionOptions, keep: Optional[list] = None):
    """One forward (and, for relevance, one batched backward) over a prepared batch.

    Args:
        keep: A list that receives the forward's :class:`AttentionRecord` (decoder, deformable
            and encoder modes; the encoder's self-attention is then recorded as well).

    Returns:
        ``(samples, detections, columns)``: per image, the predictions, the
        :class:`Detection` s above the threshold (at most ``max_queries``), and per column
        ``(detection_or_point, [Map2D rows])``.
    """
    check_mode(model, options)
    if options.mode == 'rollout':
        return run_rollout(model, data, options)
    if options.mode == 'relevance':
        with quiet_library_warnings():
            result = CheferRelevance(per_layer=options.per_layer,
                                     max_detections=options.max_queries).explain(
                                         model, data, options.score_thr)
        columns = []
        for dets, maps in zip(result.detections, result.maps):
            cols = [(d, m['relevance'] + m['raw'] + m['rollout'])
                    for d, m in list(zip(dets, maps))[:options.max_queries]]
            columns.append(cols)
        return result.samples, [d[:options.max_queries] for d in result.detections], columns
    parts: Tuple[str, ...] = ('encoder', ) if options.mode == 'encoder' else ('decoder_cross', )
    if keep is not None and 'encoder' not in parts:
        parts = parts + ('encoder', )
    with AttentionCapture(model, parts=parts) as cap, torch.no_grad(), quiet_library_warnings():
        samples = model.test_step(data)
    if keep is not None:
        keep.append(cap.record)
    return (samples, ) + build_columns(model, cap.record, samples, options)



def run_rollout(model, data, options: AttentionOptions):
    """Rollout of a DETR's encoder self-attention (``--mode rollout``).

    Per image, the columns are: with ``points``, one per point; otherwise the mean over tokens
    and one per detection (its box centre's token). With ``gradient``, one gradient rollout per
    detection (target: its class logit), each column showing its centre token (or the points)
    and the mean over tokens.
    """
    with AttentionCapture(model, parts=('encoder', ), keep_grad=options.gradient) as cap, \
            quiet_library_warnings(), torch.set_grad_enabled(options.gradient):
        if options.gradient:
            processed = model.data_preprocessor(data, False)
            samples = model.predict(processed['inputs'], processed['data_samples'])
        else:
            samples = model.test_step(data)
    record = cap.record
    dets = detections_for_queries(model, record, samples, options.score_thr)
    dets = [d[:options.max_queries] for d in dets]
    keys = [('encoder', i) for i in record.layers('encoder')]
    grid = record.key_shape
    direction = options.point_direction()
    label = rollout_label(options.head_fusion, options.discard_ratio, options.gradient)
    maker = TokenRollout(direction, label)
    flat = [d for per_img in dets for d in per_img]
    index = {(d.image, d.rank): t for t, d in enumerate(flat)}
    grads = []
    if options.gradient and flat:
        assert record.head_outputs is not None
        cls_scores = record.head_outputs[0]
        targets = torch.stack([cls_scores[d.image, d.query, d.label] for d in flat])
        grads = batched_attention_grads(targets, [record.graph[k] for k in keys])
    assert grid is not None
    columns = []
    for b, sample in enumerate(samples):
        geom = ImageGeometry.from_metainfo(sample.metainfo)
        stride = token_stride(geom, grid)
        attns = [record.dense[k][b].detach().float() for k in keys]

        def rollout(grad_index=None):
            g = None if grad_index is None else [
                _to_heads(gr[grad_index], len(samples))[b].float() for gr in grads]
            return attention_rollout(attns, options.head_fusion if g is None else 'mean',
                                     options.discard_ratio, keep_first=False, grads=g)

        def maps_at(r, xys, mean):
            tokens = [point_to_token(xy, geom, grid, stride) for xy in xys]
            out = maker.compute((r, grid, tokens + ([None] if mean else [])))
            for m, xy, tok in zip(out, xys, tokens):
                m.meta.update(reference=tuple(xy), stride=stride,
                              token_box=token_box(tok, geom, grid, stride))
            return out

        cols: List[Tuple[Any, List[Map2D]]] = []
        if options.gradient:
            for det in dets[b]:
                xys = options.points or [_centre(det.bbox)]
                cols.append((det, maps_at(rollout(index[(det.image, det.rank)]), xys, True)))
        elif options.points:
            r = rollout()
            cols = [(tuple(xy), maps_at(r, [xy], False)) for xy in options.points]
        else:
            r = rollout()
            cols.append((None, maps_at(r, [], True)))
            cols += [(det, maps_at(r, [_centre(det.bbox)], False)) for det in dets[b]]
        columns.append(cols)
    return samples, dets, columns


def _centre(bbox) -> Tuple[float, float]:
    return (float(bbox[0] + bbox[2]) / 2, float(bbox[1] + bbox[3]) / 2)


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
        cols: List[Tuple[Any, List[Map2D]]] = []
        for det in dets[b]:
            rows: List[Map2D] = []
            for layer in _layers(options, record, 'decoder_cross'):
                if options.mode == 'decoder':
                    rows += DecoderCrossAttention(options.heads, options.fusion()).compute(
                        (record, det, layer))
                else:
                    refs = record.deformable[('decoder_cross', layer)].references
                    assert refs is not None
                    rows += _with_reference(
                        DeformableSamplingPoints(options.heads,
                                                 per_head=options.fusion() is None).compute(
                            (record, 'decoder_cross', layer, b, det.query, geom)),
                        refs[b, det.query], geom)
            cols.append((det, rows))
        columns.append(cols)
    return dets, columns


def encoder_rows(record: AttentionRecord, b: int, point, geom: ImageGeometry,
                 options: AttentionOptions) -> List[Map2D]:
    rows: List[Map2D] = []
    for layer in _layers(options, record, 'encoder'):
        if ('encoder', layer) in record.dense:
            rows += EncoderSelfAttention(options.heads, options.fusion(),
                                         options.point_direction()).compute(
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
                m.meta['token_box'] = token_box((row, col), geom, (h0, w0))
                m.label += ' FROM'
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


def points_in_image(points, shape) -> None:
    h, w = shape[:2]
    for x, y in points:
        if not (0 <= x < w and 0 <= y < h):
            raise UserInputError(f'point {x:g},{y:g} is outside the image ({w}x{h})')


__all__ = [
    'AttentionOptions', 'MODES', 'check_mode', 'run_attention', 'build_columns',
    'parse_points', 'figure_title', 'no_detection_note', 'points_in_image', 'Detection',
    'run_rollout', 'quiet_library_warnings'
]
