"""``AttentionVisHook``: DETR-family decoder attention per detection during val/test."""
from typing import List, Optional, Sequence

import numpy as np

from ..apis.attention_runner import AttentionOptions, build_columns, check_mode, figure_title
from ..capture.attention import AttentionCapture
from ..registry import HOOKS
from ..render.geometry import ImageGeometry
from ..render.image import colormap_code
from ..utils.errors import UserInputError
from .base import CaptureVisHook


@HOOKS.register_module()
class AttentionVisHook(CaptureVisHook):
    """Draw, for every sample of the selected batches, the decoder cross-attention (or the
    deformable sampling points) of each detection: one figure per sample with a column per
    detected query and a row per layer (or head).

    Example::

        custom_hooks = [dict(type='mmattnvis.AttentionVisHook', mode='decoder', layers=[-1],
                             interval=50)]

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

    def _validate(self, model) -> None:
        super()._validate(model)
        if self.options.mode not in ('decoder', 'deformable'):
            self._fail('mode', f"must be 'decoder' or 'deformable', got {self.options.mode!r}")
        try:
            check_mode(model, self.options)
        except UserInputError as err:
            msg = str(err)
            field = ('head_fusion' if 'head fusion' in msg else
                     'layers' if 'does not exist' in msg else 'mode')
            self._fail(field, msg)
        if not isinstance(self.options.max_queries, int) or self.options.max_queries < 1:
            self._fail('max_queries', f'must be an integer >= 1, got '
                       f'{self.options.max_queries!r}')
        try:
            colormap_code(self.colormap)
        except ValueError as err:
            self._fail('colormap', str(err))

    def _make_capture(self, model) -> AttentionCapture:
        self._model = model
        return AttentionCapture(model, parts=['decoder_cross'], layers=self.options.layers)

    def _get_figure(self, runner):
        if self._figure is None:
            from ..visualization import AttentionFigure, FeatMapVisualizer
            vis = FeatMapVisualizer(name=f'mmattnvis_attn_hook_{id(self)}')
            self._figure = AttentionFigure(vis, self.alpha, self.colormap, self.cell_width)
        self._figure.visualizer.dataset_meta = getattr(runner.visualizer, 'dataset_meta',
                                                       None) or self._model.dataset_meta
        return self._figure

    def _after_iter(self, runner, batch_idx, outputs) -> None:
        # Columns need the whole batch's record: build them once per drawn batch.
        self._batch_columns = None
        super()._after_iter(runner, batch_idx, outputs)

    def _draw_sample(self, runner, image_rgb: np.ndarray, sample, index: int) -> List[tuple]:
        fig = self._get_figure(runner)
        if self._batch_columns is None:
            samples = self._current_outputs
            self._batch_columns = build_columns(self._model, self._capture.record, samples,
                                                self.options)[1]
        columns = self._batch_columns[index]
        tag = self._sample_tag(runner, sample)
        if not columns:
            return [(f'{tag}_attention', fig.note(image_rgb, 'no detections above score_thr='
                                                  f'{self.score_thr}'))]
        geom = ImageGeometry.from_metainfo(sample.metainfo)
        classes = (fig.visualizer.dataset_meta or {}).get('classes')
        cols = []
        for det, rows in columns:
            cls = classes[det.label] if classes else str(det.label)
            cols.append(fig.column(image_rgb, det, rows, geom,
                                   header=f'q{det.query} {cls} {det.score:.2f}'))
        return [(f'{tag}_attention', fig.figure(cols, figure_title(self.options, tag)))]

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._current_outputs = outputs
        super().after_test_iter(runner, batch_idx, data_batch, outputs)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._current_outputs = outputs
        super().after_val_iter(runner, batch_idx, data_batch, outputs)
