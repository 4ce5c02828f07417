"""``AttentionVisHook``: DETR-family decoder attention per detection during val/test/train."""
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..apis.attention import AttentionRun
from ..apis.attention_runner import AttentionOptions, figure_title
from ..apis.options import OptionError, check_draw_options
from ..capture.attention import AttentionCapture
from ..methods.attention import (
    DecoderCrossAttention,
    DeformableSamplingPoints,
    detections_for_queries,
)
from ..metrics.faithfulness import pointing_game
from ..registry import HOOKS
from ..render.geometry import ImageGeometry, align_to_image
from ..structures import ResultRecord
from ..utils.errors import UserInputError
from .base import CaptureVisHook
from .evolution import match_to_ground_truth
from .meta import loop_dataset_meta


@HOOKS.register_module()
class AttentionVisHook(CaptureVisHook):
    """Draw, for every sample of the selected batches, the decoder cross-attention (or the
    deformable sampling points) of each detection: one figure per sample with a column per
    detected query and a row per layer (or head).

    Example::

        custom_hooks = [dict(type='mmattnvis.AttentionVisHook', mode='decoder', layers=[-1],
                             interval=50)]

    During ``runner.train()`` the fixed samples are drawn after every validation, and each
    ground-truth object of a fixed sample gets a row of the evolution figure: the last decoder
    layer's head-averaged cross-attention (or sampling points) of the query Hungarian-matched to it
    by IoU, epoch after epoch. The share of matched queries whose attention peaks inside their
    ground-truth box is logged per epoch as the scalar ``mmattnvis/attn_in_box``.

    Args:
        mode: ``decoder`` (DETR, Conditional DETR, DAB-DETR) or ``deformable`` (Deformable
            DETR, DINO).
        layers: Decoder layers (negative from the end); default the last.
        heads: Only these heads; default all.
        head_fusion: ``mean``, ``max``, ``min`` or ``none`` (a row per head).
        max_queries: At most this many detections (columns) per figure.
        cell_width: Width of a figure cell in pixels.
        alpha: Heat-map weight.
        colormap: OpenCV colormap name.
        **kwargs: ``interval``, ``max_samples``, ``score_thr``, ``out_dir``, ``draw_gt``...
    """

    def __init__(self,
                 mode: str = 'decoder',
                 layers: Optional[Sequence[int]] = None,
                 heads: Optional[Sequence[int]] = None,
                 head_fusion: str = 'mean',
                 max_queries: int = 8,
                 cell_width: int = 320,
                 alpha: float = 0.5,
                 colormap: str = 'jet',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.options = AttentionOptions(mode=mode, layers=layers, heads=heads,
                                        head_fusion=head_fusion, score_thr=self.score_thr,
                                        max_queries=max_queries)
        self.cell_width = cell_width
        self.alpha = alpha
        self.colormap = colormap
        self._figure = None
        self._model = None
        self._run: Optional[AttentionRun] = None

    def _validate(self, model) -> None:
        super()._validate(model)
        if self.options.mode not in ('decoder', 'deformable'):
            self._fail('mode', f"must be 'decoder' or 'deformable', got {self.options.mode!r}")
        if not isinstance(self.options.max_queries, int) or self.options.max_queries < 1:
            self._fail('max_queries', f'must be an integer >= 1, got '
                       f'{self.options.max_queries!r}')
        try:
            check_draw_options(self.colormap, self.alpha)
            self._run = AttentionRun(model, self.options,
                                     keep_encoder=bool(self.results_dir or self.report_dir))
        except OptionError as err:
            self._fail(err.field, str(err))
        except UserInputError as err:  # the model is no DETR
            self._fail('mode', str(err))
        self._model = model

    def _task(self) -> str:
        return 'attention'

    def _make_capture(self, model) -> AttentionCapture:
        self._model = model
        # the last layer is always recorded: the training-time evolution follows it
        layers = sorted(set(self.options.layers or [-1]) | {-1})
        parts = ['decoder_cross']
        if self._run is not None and self._run.keep_encoder:
            parts.append('encoder')
        return AttentionCapture(model, parts=parts, layers=layers)

    def _get_figure(self, runner):
        if self._figure is None:
            from ..visualization import DetectionFigure, FeatMapVisualizer
            vis = FeatMapVisualizer(name=f'mmattnvis_attn_hook_{id(self)}')
            self._figure = DetectionFigure(vis, self.alpha, self.colormap, self.cell_width)
        self._figure.visualizer.dataset_meta = loop_dataset_meta(runner, self._mode)
        return self._figure

    def _records(self, runner, outputs: Sequence[Any]) -> List[ResultRecord]:
        assert self._run is not None
        self._run.dataset_meta = loop_dataset_meta(runner, self._mode)  # class names
        return self._run.records(self._capture.record, outputs)

    def _draw_record(self, runner, image_rgb: np.ndarray, record: ResultRecord,
                     tag: str) -> List[tuple]:
        fig = self._get_figure(runner)
        return [(f'{tag}_attention',
                 fig.draw_record(record, image_rgb, figure_title(self.options, tag),
                                 f'no detections above score_thr={self.score_thr}'))]

    def _evolution_rows(self, runner, image_rgb: np.ndarray, sample, index: int,
                        gt: Dict[str, np.ndarray], drawings: List[tuple]) -> Dict[str, Any]:
        record = self._capture.record
        layer = record.layers('decoder_cross')[-1]
        geom = ImageGeometry.from_metainfo(sample.metainfo)
        # every prediction (no threshold), one per query: the candidates for each object
        seen, dets = set(), []
        for det in detections_for_queries(self._model, record, [sample], score_thr=-1.0)[index]:
            if det.query not in seen:
                seen.add(det.query)
                dets.append(det)
        matches = match_to_ground_truth(gt['bboxes'], np.array([d.bbox for d in dets]))
        fig = self._get_figure(runner)
        classes = (fig.visualizer.dataset_meta or {}).get('classes')
        rows, meta, hits = [], {}, []
        for g, p, iou in matches:
            det, box = dets[p], gt['bboxes'][g]
            if self.options.mode == 'decoder':
                m = DecoderCrossAttention(None, 'mean').compute((record, det, layer))[0]
            else:
                m = DeformableSamplingPoints(None).compute(
                    (record, 'decoder_cross', layer, index, det.query, geom))[0]
            hit = pointing_game(align_to_image(np.asarray(m.data, np.float32), geom), box)
            hits.append(hit)
            cell = fig._cell(image_rgb, m, geom, None)
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            thick = max(2, round(max(cell.shape[:2]) / 200))
            cv2.rectangle(cell, (x1, y1), (x2, y2), (255, 255, 255), thick + 2)
            cv2.rectangle(cell, (x1, y1), (x2, y2), (0, 200, 0), thick)
            label = int(gt['labels'][g])
            name = classes[label] if classes and label < len(classes) else str(label)
            rows.append((f'gt{g}', f'gt{g} {name}: q{det.query} IoU {iou:.2f}'
                         f'{" in" if hit else " out"}', cell))
            meta[f'gt{g}'] = {'query': det.query, 'iou': iou, 'hit': bool(hit),
                              'gt_box': [float(v) for v in box], 'gt_label': label}
        scalars = {'attn_in_box': float(np.mean(hits))} if hits else {}
        return {'rows': rows, 'scalars': scalars, 'meta': meta}
