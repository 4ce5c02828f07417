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


#: Box colours of the error panels (RGB): the false box red, the missed object's box green.
FALSE_BOX, MISSED_BOX = (230, 40, 40), (30, 200, 60)


def error_panels(record: ResultRecord, image_rgb: np.ndarray, cell_width: int = 320,
                 alpha: float = 0.5, colormap: str = 'jet') -> List[Any]:
    """One :class:`~mmattnvis.render.layout.Panel` per error of an ``errors`` record that has a
    map: the map over the image, the false box (red) or the missed object's box (green), and
    the caption ``kind: class`` (with the miss reason)."""
    import cv2

    from ..render.image import heatmap_overlay
    from ..render.layout import BoxItem, Panel
    info = record.info.get('errors') or {}
    h, w = image_rgb.shape[:2]
    scale = cell_width / float(w)
    size = (cell_width, max(1, round(h * scale)))
    small = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
    by_rank = {d.rank: d for d in record.detections}
    items = []
    for d in info.get('detections', []):
        det = by_rank.get(d.get('rank'))
        if d.get('map') in record.maps and det is not None:
            name = det.class_name or str(det.label)
            items.append((d['map'], det.bbox, FALSE_BOX, f"{d['kind']}: {name} {det.score:.2f}"))
    for g in info.get('ground_truth', []):
        if g.get('status') != 'missed':
            continue
        reason = g.get('reason')
        text = f"missed: {g.get('class_name', g['label'])}" + (f' ({reason})' if reason else '')
        if g.get('map') in record.maps:
            items.append((g['map'], g['bbox'], MISSED_BOX, text))
        if g.get('query_map') in record.maps:  # DETR family: its best query's attention
            items.append((g['query_map'], g['bbox'], MISSED_BOX, f'{text}, best query'))
    panels = []
    for key, box, color, text in items:
        heat = cv2.resize(np.asarray(record.maps[key].data, np.float32), size,
                          interpolation=cv2.INTER_LINEAR)
        picture = heatmap_overlay(heat, small, alpha, colormap)
        panels.append(Panel(picture, [BoxItem(np.asarray(box, np.float32) * scale, color, '')],
                            caption=text))
    return panels


@register_figure('errors')
def error_figure(record: ResultRecord, image_rgb: np.ndarray, options: Any, tag: str,
                 meta: Optional[dict] = None, cell_width: int = 320) -> Drawn:
    """The errors of one sample with their maps, a panel each (nothing when it has none)."""
    from ..render.layout import Sheet
    panels = error_panels(record, image_rgb, cell_width, getattr(options, 'alpha', 0.5),
                          getattr(options, 'colormap', 'jet'))
    if not panels:
        return []
    sheet = Sheet(panels, cols=min(4, len(panels)), title=f'{tag}: errors and their maps')
    return [(f'{tag}_errors', sheet.render())]


__all__ = ['register_figure', 'figure_for', 'detection_columns', 'featmap_panels',
           'error_panels', 'error_figure']
