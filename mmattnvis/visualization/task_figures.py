"""The drawing sink of each task's records: ``fn(record, image_rgb, options, tag) ->
[(name, rgb)]``. A task registers its figure here; one without a figure only saves records."""
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..structures import ResultRecord

Drawn = List[Tuple[str, np.ndarray]]
_FIGURES: Dict[str, Callable[..., Drawn]] = {}


def register_figure(*tasks: str):
    """Decorator: ``@register_figure('errors')`` on ``fn(record, image_rgb, options, tag)``."""

    def wrap(fn):
        for task in tasks:
            _FIGURES[task] = fn
        return fn

    return wrap


def figure_for(task: str) -> Optional[Callable[..., Drawn]]:
    return _FIGURES.get(task)


def _visualizer(meta: Optional[dict], key: str):
    from .featmap_visualizer import FeatMapVisualizer
    vis = FeatMapVisualizer.get_instance(f'mmattnvis_task_figure_{key}')
    vis.dataset_meta = meta
    return vis


@register_figure('cam', 'odam', 'drise', 'faithfulness', 'attention', 'relevance')
def detection_columns(record: ResultRecord, image_rgb: np.ndarray, options: Any, tag: str,
                      meta: Optional[dict] = None, cell_width: int = 320) -> Drawn:
    """A column per detection (its maps below its box), as ``cam_vis`` / ``attn_vis`` draw."""
    from .detection_figure import DetectionFigure
    fig = DetectionFigure(_visualizer(meta, 'detection'), getattr(options, 'alpha', 0.5),
                          getattr(options, 'colormap', 'jet'), cell_width)
    methods = getattr(options, 'methods', None) or [getattr(options, 'mode', record.task)]
    title = f'{tag}: {", ".join(str(m) for m in methods)}'
    note = f"no detections above score_thr={getattr(options, 'score_thr', '')}"
    return [(f'{tag}_{record.task}', fig.draw_record(record, image_rgb, title, note))]


@register_figure('featmap')
def featmap_panels(record: ResultRecord, image_rgb: np.ndarray, options: Any, tag: str,
                   meta: Optional[dict] = None, cell_width: int = 320) -> Drawn:
    """One panel per captured layer."""
    vis = _visualizer(meta, 'featmap')
    return [(f'{tag}_featmap', vis.draw_record(record, image_rgb, 1.0, options.arrangement,
                                               options.align, options.draw_pred, False))]


__all__ = ['register_figure', 'figure_for', 'detection_columns', 'featmap_panels']
