"""``FeatMapVisHook``: feature maps drawn during ``runner.val()`` / ``test()`` / ``train()``."""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..apis.featmap_runner import FeatMapOptions, FeatMapRun, feature_capture
from ..apis.options import OptionError
from ..registry import HOOKS
from ..structures import ResultRecord
from .base import CaptureVisHook
from .meta import loop_dataset_meta


@HOOKS.register_module()
class FeatMapVisHook(CaptureVisHook):
    """Draw aligned feature maps of named layers for every sample of the selected batches.

    Example::

        custom_hooks = [dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'],
                             channel_reduction='squeeze_mean', interval=50)]

    Each sample gives one titled image per captured map (``neck.0``, ``neck.1``, ...: the layer,
    its shape and the reduction above the map), sent to the runner
    visualizer's backends with ``add_image`` under ``<image>_id<img_id>[_rank<r>]_<layer>``
    and, with ``out_dir``, written as PNG under ``work_dir/out_dir/<val|test>/``. During
    ``runner.train()`` the fixed samples are drawn after every validation (epoch in the names,
    ``step=epoch``) and an evolution figure per sample (a row per map, a column per epoch) is
    written to ``<out_dir>/evolution/FeatMapVisHook/`` when training ends.

    Args:
        target_layers: Module names (``backbone``, ``neck.out_layers[2]``...).
        channel_reduction: ``squeeze_mean``, ``select_max``, ``pixel_wise_max`` or ``None``.
        topk: Channels in the grid when ``channel_reduction`` is ``None``.
        arrangement: ``(rows, cols)`` of the top-k grid.
        alpha: Heat-map weight in the blend.
        colormap: OpenCV colormap name.
        align: Undo letterbox / padding (``False``: stretch like MMEngine).
        **kwargs: ``interval``, ``max_samples``, ``draw_pred``, ``draw_gt``, ``score_thr``,
            ``out_dir``, ``fixed_samples``, ``evolution_interval``... (see
            :class:`CaptureVisHook`).
    """

    def __init__(self,
                 target_layers: Sequence[str] = ('backbone', ),
                 channel_reduction: Optional[str] = 'squeeze_mean',
                 topk: int = 4,
                 arrangement: Sequence[int] = (2, 2),
                 alpha: float = 0.5,
                 colormap: str = 'jet',
                 align: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_layers = [target_layers] if isinstance(target_layers, str) else \
            list(target_layers)
        self.channel_reduction = channel_reduction
        self.topk = topk
        self.arrangement = tuple(arrangement)
        self.alpha = alpha
        self.colormap = colormap
        self.align = align
        self._run: Optional[FeatMapRun] = None
        self._untitled: Dict[str, np.ndarray] = {}

    def _validate(self, model) -> None:
        super()._validate(model)
        options = FeatMapOptions(target_layers=self.target_layers,
                                 channel_reduction=self.channel_reduction, topk=self.topk,
                                 arrangement=self.arrangement, alpha=self.alpha,
                                 colormap=self.colormap, score_thr=self.score_thr,
                                 align=self.align, draw_pred=self.draw_pred)
        try:
            self._run = FeatMapRun(model, options)
        except OptionError as err:
            self._fail(err.field, str(err))

    def _task(self) -> str:
        return 'featmap'

    def _make_capture(self, model):
        return feature_capture(model, self.target_layers, keep=False)

    def _records(self, runner, outputs: Sequence[Any]) -> List[ResultRecord]:
        assert self._run is not None
        self._run.visualizer.dataset_meta = loop_dataset_meta(runner, self._mode)
        return self._run.records(self._capture.featmaps(), outputs)

    def _draw_record(self, runner, image_rgb: np.ndarray, record: ResultRecord,
                     tag: str) -> List[tuple]:
        assert self._run is not None
        panels = self._run.visualizer.record_panels(record, image_rgb, 1.0, self.arrangement,
                                                    self.align, self.draw_pred, self.draw_gt)
        # titled images go out; the evolution figure labels its cells itself
        self._untitled = {f'{tag}_{name}': bare for name, _, bare in panels}
        return [(f'{tag}_{name}', titled) for name, titled, _ in panels]

    def _evolution_rows(self, runner, image_rgb: np.ndarray, sample, index: int,
                        gt: Dict[str, np.ndarray], drawings: List[tuple]) -> Dict[str, Any]:
        tag = self._sample_tag(runner, sample)
        rows = [(name[len(tag) + 1:], name[len(tag) + 1:], self._untitled.get(name, img))
                for name, img in drawings]
        return {'rows': rows, 'scalars': {}, 'meta': {}}
