"""``AttentionVisHook``: DETR-family decoder attention per detection during val/test/train."""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..apis.attention import AttentionRun
from ..apis.attention_evolution import (
    attention_capture,
    attention_evolution_rows,
    attention_figure,
)
from ..apis.attention_runner import AttentionOptions, figure_title
from ..apis.options import OptionError, check_draw_options
from ..registry import HOOKS
from ..structures import ResultRecord
from ..utils.errors import UserInputError
from .base import CaptureVisHook
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

    def _make_capture(self, model):
        self._model = model
        # the last layer is always recorded: the training-time evolution follows it
        return attention_capture(model, self.options.layers,
                                 self._run is not None and self._run.keep_encoder)

    def _get_figure(self, runner):
        if self._figure is None:
            self._figure = attention_figure(f'mmattnvis_attn_hook_{id(self)}', self.alpha,
                                            self.colormap, self.cell_width)
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
        return attention_evolution_rows(self._model, self._capture.record, self.options.mode,
                                        self._get_figure(runner), image_rgb, sample, index, gt)
