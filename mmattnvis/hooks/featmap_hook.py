"""``FeatMapVisHook``: feature maps drawn during ``runner.val()`` / ``test()`` / ``train()``."""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..capture import FeatureCapture
from ..methods.featmap import build_reduction
from ..registry import HOOKS
from ..render.featmap import render_featmap
from ..render.geometry import ImageGeometry
from ..render.image import colormap_code
from ..utils.errors import UserInputError
from .base import CaptureVisHook


@HOOKS.register_module()
class FeatMapVisHook(CaptureVisHook):
    """Draw aligned feature maps of named layers for every sample of the selected batches.

    Example::

        custom_hooks = [dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'],
                             channel_reduction='squeeze_mean', interval=50)]

    Each sample gives one image per captured map (``neck.0``, ``neck.1``, ...), sent to the runner
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
        self._visualizer = None

    def _validate(self, model) -> None:
        super()._validate(model)
        if not self.target_layers:
            self._fail('target_layers', 'is empty')
        for field, check in (
            ('channel_reduction', lambda: build_reduction(self.channel_reduction, 1, (1, 1))),
            ('arrangement', lambda: build_reduction(self.channel_reduction, self.topk,
                                                    self.arrangement)),
            ('target_layers', lambda: FeatureCapture(model, self.target_layers)),
        ):
            try:
                check()
            except UserInputError as err:
                self._fail(field, str(err))
        self._method = build_reduction(self.channel_reduction, self.topk, self.arrangement)
        try:
            colormap_code(self.colormap)
        except ValueError as err:
            self._fail('colormap', str(err))
        if not 0.0 <= float(self.alpha) <= 1.0:
            self._fail('alpha', f'must be within [0, 1], got {self.alpha!r}')

    def _make_capture(self, model) -> FeatureCapture:
        return FeatureCapture(model, self.target_layers, keep=False)

    def _get_visualizer(self, runner):
        if self._visualizer is None:
            from ..visualization import FeatMapVisualizer
            self._visualizer = FeatMapVisualizer(
                name=f'mmattnvis_featmap_hook_{id(self)}', featmap_alpha=self.alpha,
                colormap=self.colormap)
        self._visualizer.dataset_meta = getattr(runner.visualizer, 'dataset_meta', None) or \
            getattr(self._unwrap(runner.model), 'dataset_meta', None)
        return self._visualizer

    def _draw_sample(self, runner, image_rgb: np.ndarray, sample, index: int) -> List[tuple]:
        vis = self._get_visualizer(runner)
        geometry = ImageGeometry.from_metainfo(sample.metainfo) if self.align else None
        pred_layer = vis.draw_instances_layer(image_rgb.shape[:2], sample, self.score_thr,
                                              self.draw_pred, self.draw_gt)
        tag = self._sample_tag(runner, sample)
        out = []
        for name, fm in self._capture.featmaps().items():
            if index >= fm.shape[0]:
                continue
            img = render_featmap(fm[index], image_rgb, self._method, geometry, self.alpha,
                                 self.colormap, self.arrangement, pred_layer)
            out.append((f'{tag}_{name}', img))
        return out

    def _evolution_rows(self, runner, image_rgb: np.ndarray, sample, index: int,
                        gt: Dict[str, np.ndarray], drawings: List[tuple]) -> Dict[str, Any]:
        tag = self._sample_tag(runner, sample)
        rows = [(name[len(tag) + 1:], name[len(tag) + 1:], img) for name, img in drawings]
        return {'rows': rows, 'scalars': {}, 'meta': {}}
