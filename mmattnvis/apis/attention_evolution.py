"""What ``AttentionVisHook`` needs beyond :class:`~mmattnvis.apis.attention.AttentionRun`: its
capture, its figure, and the per-object rows of the training-time evolution figure."""
from typing import Any, Dict, Optional, Sequence

import cv2
import numpy as np

from ..capture.attention import AttentionCapture
from ..methods.attention import (
    DecoderCrossAttention,
    DeformableSamplingPoints,
    detections_for_queries,
)
from ..metrics.faithfulness import pointing_game
from ..render.geometry import ImageGeometry, align_to_image
from ..visualization import DetectionFigure, FeatMapVisualizer
from .evolution import match_to_ground_truth


def attention_capture(model, layers: Optional[Sequence[int]],
                      keep_encoder: bool) -> AttentionCapture:
    """Decoder cross-attention of ``layers`` (default the last) and always of the last layer
    (the training-time evolution follows it); the encoder's too with ``keep_encoder``."""
    parts = ['decoder_cross']
    if keep_encoder:
        parts.append('encoder')
    return AttentionCapture(model, parts=parts, layers=sorted(set(layers or [-1]) | {-1}))


def attention_figure(name: str, alpha: float, colormap: str,
                     cell_width: int) -> DetectionFigure:
    """The per-detection figure on a visualizer of its own (``name``: unique per hook)."""
    return DetectionFigure(FeatMapVisualizer(name=name), alpha, colormap, cell_width)


def attention_evolution_rows(model, record, mode: str, figure: DetectionFigure,
                             image_rgb: np.ndarray, sample, index: int,
                             gt: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """A row per ground-truth object of a fixed sample: the last decoder layer's head-averaged
    cross-attention (``mode='decoder'``) or sampling points (``'deformable'``) of the query
    Hungarian-matched to it by IoU, its box drawn; the share of objects whose map peaks inside
    their box is the scalar ``attn_in_box``.

    Args:
        model: The DETR the capture sits on.
        record: The capture's :class:`~mmattnvis.capture.attention.AttentionRecord`.
        figure: Draws the cells (:func:`attention_figure`); its visualizer's
            ``dataset_meta`` names the classes.
        index: The sample's index in the batch ``record`` holds.
        gt: ``{'bboxes': (N, 4), 'labels': (N,)}`` of the sample.

    Returns:
        ``{'rows': [(f'gt{i}', label, rgb_cell)], 'scalars': {...}, 'meta': {f'gt{i}': ...}}``.
    """
    layer = record.layers('decoder_cross')[-1]
    geom = ImageGeometry.from_metainfo(sample.metainfo)
    # every prediction (no threshold), one per query: the candidates for each object
    seen, dets = set(), []
    for det in detections_for_queries(model, record, [sample], score_thr=-1.0)[index]:
        if det.query not in seen:
            seen.add(det.query)
            dets.append(det)
    matches = match_to_ground_truth(gt['bboxes'], np.array([d.bbox for d in dets]))
    classes = (figure.visualizer.dataset_meta or {}).get('classes')
    rows, meta, hits = [], {}, []
    for g, p, iou in matches:
        det, box = dets[p], gt['bboxes'][g]
        if mode == 'decoder':
            m = DecoderCrossAttention(None, 'mean').compute((record, det, layer))[0]
        else:
            m = DeformableSamplingPoints(None).compute(
                (record, 'decoder_cross', layer, index, det.query, geom))[0]
        hit = pointing_game(align_to_image(np.asarray(m.data, np.float32), geom), box)
        hits.append(hit)
        cell = figure._cell(image_rgb, m, geom, None)
        _draw_gt_box(cell, box)
        label = int(gt['labels'][g])
        name = classes[label] if classes and label < len(classes) else str(label)
        rows.append((f'gt{g}', f'gt{g} {name}: q{det.query} IoU {iou:.2f}'
                     f'{" in" if hit else " out"}', cell))
        meta[f'gt{g}'] = {'query': det.query, 'iou': iou, 'hit': bool(hit),
                          'gt_box': [float(v) for v in box], 'gt_label': label}
    scalars = {'attn_in_box': float(np.mean(hits))} if hits else {}
    return {'rows': rows, 'scalars': scalars, 'meta': meta}


def _draw_gt_box(cell: np.ndarray, box: Sequence[float]) -> None:
    """A green box with a white outline, in place."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    thick = max(2, round(max(cell.shape[:2]) / 200))
    cv2.rectangle(cell, (x1, y1), (x2, y2), (255, 255, 255), thick + 2)
    cv2.rectangle(cell, (x1, y1), (x2, y2), (0, 200, 0), thick)


__all__ = ['attention_capture', 'attention_figure', 'attention_evolution_rows']
