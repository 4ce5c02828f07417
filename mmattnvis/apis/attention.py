"""The attention task as result records: :class:`AttentionRun`, shared by ``attn_vis`` and
``AttentionVisHook``."""
from typing import Any, List, Optional, Sequence

import numpy as np

from ..capture.attention import AttentionRecord
from ..methods.attention import token_stride
from ..registry import RUNS
from ..structures import Detection, ResultRecord
from .attention_runner import AttentionOptions, build_columns, check_mode, run_attention
from .records import name_detections, new_record
from .run import Run, batch_dict


@RUNS.register_module(name=['attention', 'relevance'])
class AttentionRun(Run):
    """The attention task: a DETR-family model and validated options -> result records.

    ``run_batch`` (images) and ``records`` (an :class:`AttentionRecord` captured elsewhere, e.g.
    by :class:`~mmattnvis.hooks.AttentionVisHook` during a runner's loop) give the same records.

    Args:
        model: A DETR-family detector.
        options: What to draw.
        keep_encoder: Also keep the dense encoder self-attention in each record (for the
            report's click-anywhere view; DETR, Conditional/DAB-DETR).
        dataset_meta: The dataset's meta (``classes``) when the model has none (a runner's
            model); default ``model.dataset_meta``.

    Raises:
        UserInputError: The model cannot give what the mode draws.
    """

    task = 'attention'
    options_class = AttentionOptions

    def __init__(self, model, options: AttentionOptions, keep_encoder: bool = False,
                 cfg: Any = None, dataset_meta: Optional[dict] = None) -> None:
        super().__init__(model, options, cfg)
        check_mode(model, options)
        self.dataset_meta = dataset_meta
        self.keep_encoder = keep_encoder and options.mode in ('decoder', 'deformable',
                                                              'encoder')

    @property
    def needs_grad(self) -> bool:  # type: ignore[override]
        return self.options.mode == 'relevance' or bool(self.options.gradient)

    def run_batch(self, inputs, data_samples) -> List[ResultRecord]:
        """Forward one batch and return one result record per image."""
        keep: Optional[list] = [] if self.keep_encoder else None
        samples, dets, columns = run_attention(self.model, batch_dict(inputs, data_samples),
                                               self.options, keep)
        return attention_records(samples, dets, columns, self.options, self.classes, None,
                                 keep[0] if keep else None)

    def records(self, record: AttentionRecord, samples: Sequence[Any]) -> List[ResultRecord]:
        """Records from a forward recorded elsewhere (decoder / deformable modes)."""
        dets, columns = build_columns(self.model, record, samples, self.options)
        return attention_records(samples, dets, columns, self.options, self.classes, None,
                                 record if self.keep_encoder else None)


MODE_KINDS = {'decoder': 'cross_attention', 'deformable': 'sampling_points',
              'encoder': 'encoder_attention', 'relevance': 'relevance', 'rollout': 'rollout'}


def attention_records(samples: Sequence[Any], dets: Sequence[Sequence[Detection]],
                      columns: Sequence[Sequence[tuple]], options: AttentionOptions,
                      classes: Optional[Sequence[str]] = None,
                      paths: Optional[Sequence[Optional[str]]] = None,
                      record: Optional[AttentionRecord] = None) -> List[ResultRecord]:
    """One result record per image from :func:`run_attention`'s output (CLI and hook alike).

    Column ``j`` of the figure becomes the maps ``c<j>/<i>`` with ``meta['column'] = j``;
    ``info['columns']`` says what each column is (a detection's rank, a point, all tokens).
    With the forward's ``record`` holding dense encoder self-attention, each record also keeps
    it, quantised (see docs/results_format.md), for the report's click-anywhere view.
    """
    out = []
    kind = MODE_KINDS[options.mode]
    for b, sample in enumerate(samples):
        name_detections(dets[b], classes)
        rec = new_record(sample, 'attention', dets[b], None if paths is None else paths[b],
                         {'mode': options.mode, 'head_fusion': options.head_fusion,
                          'score_thr': options.score_thr, 'columns': []})
        for j, (head, rows) in enumerate(columns[b]):
            if head is None:
                rec.info['columns'].append({'kind': 'all'})
            elif isinstance(head, tuple):
                rec.info['columns'].append({'kind': 'point', 'point': [float(v) for v in head]})
            else:
                rec.info['columns'].append({'kind': 'detection', 'detection': head.rank})
            for i, m in enumerate(rows):
                m.meta.setdefault('kind', kind)
                m.meta['column'] = j
                if not isinstance(head, tuple) and head is not None:
                    m.meta.setdefault('detection', head.rank)
                    m.meta.setdefault('query', head.query)
                rec.add_map(f'c{j}/{i}', m)
        keep_sampling_points(rec)
        if record is not None:
            keep_encoder_attention(rec, record, b)
        out.append(rec)
    return out


def keep_sampling_points(rec: ResultRecord) -> None:
    """Store, per detection, the sampling points of its query in the deepest layer drawn (every
    drawn head) as ``arrays['sampling_points/<rank>']``, float32 ``(K, 5)`` rows ``x, y`` (original
    image pixels), ``weight``, ``level``, ``head``: what the report draws when the detection is
    clicked. Each map keeps its own points in ``meta['points']`` (saved in the npz)."""
    by_det: dict = {}
    for m in rec.maps.values():
        det, pts = m.meta.get('detection'), m.meta.get('points')
        if isinstance(det, int) and pts is not None:
            by_det.setdefault(det, []).append(m)
    for det, maps in by_det.items():
        layers = [m.meta.get('layer') for m in maps if isinstance(m.meta.get('layer'), int)]
        deepest = max(layers) if layers else None
        pts = [_rows(m.meta['points']) for m in maps
               if deepest is None or m.meta.get('layer') == deepest]
        rec.arrays[f'sampling_points/{det}'] = np.concatenate(pts, 0)


def _rows(points) -> np.ndarray:
    a = np.asarray(points, np.float32)
    return a.reshape(-1, a.shape[-1] if a.ndim else 1)


def keep_encoder_attention(rec: ResultRecord, record: AttentionRecord, b: int) -> None:
    """Store the last encoder layer's dense self-attention of image ``b`` (heads averaged),
    each row scaled to 0..255 with its maximum kept in ``encoder_attention_scale``."""
    layers = [i for p, i in record.dense if p == 'encoder']
    if not layers or record.key_shape is None:
        return
    layer = max(layers)
    attn = record.dense[('encoder', layer)][b].detach().float().mean(0).cpu().numpy()
    scale = attn.max(axis=1).astype(np.float32)
    q = np.round(attn / np.maximum(scale, 1e-12)[:, None] * 255.0)
    rec.arrays['encoder_attention'] = q.clip(0, 255).astype(np.uint8)
    rec.arrays['encoder_attention_scale'] = scale
    rec.info['encoder_grid'] = [int(v) for v in record.key_shape]
    rec.info['encoder_stride'] = token_stride(rec.geometry, record.key_shape)
    rec.info['encoder_layer'] = layer
