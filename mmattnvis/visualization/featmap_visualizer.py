"""``FeatMapVisualizer``: MMDet's ``DetLocalVisualizer`` plus aligned feature-map panels."""
import dataclasses
import math
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.visualization import DetLocalVisualizer

from ..compat.mmdet_visualizer import draw_instances
from ..methods.base import MapMethod
from ..methods.featmap import build_reduction
from ..registry import VISUALIZERS
from ..render.featmap import finish_cells, grid_shape, render_cells, render_reduced
from ..render.geometry import ImageGeometry
from ..render.image import (
    SparseLayer,
    add_title,
    auto_arrange,
    blend_rgba,
    composite_rgba,
    tile,
)
from ..render.layout import BoxItem, Panel, Sheet, colorbar_panel, label_text, palette_color
from ..render.options import FigureOptions
from ..structures import Map2D, ResultRecord
from .figure_output import style_of


@VISUALIZERS.register_module()
class FeatMapVisualizer(DetLocalVisualizer):
    """Draw feature maps aligned with the original image, with predictions on top.

    Args:
        featmap_alpha: Weight of the heat map when blended with the image (``alpha`` stays
            DetLocalVisualizer's box/mask transparency).
        colormap: OpenCV colormap name (``jet`` as in MMEngine).
        **kwargs: Passed to :class:`mmdet.visualization.DetLocalVisualizer`
            (``name``, ``vis_backends``, ``save_dir``, ``bbox_color``, ...).
    """

    def __init__(self,
                 name: str = 'mmattnvis_featmap',
                 featmap_alpha: float = 0.5,
                 colormap: str = 'jet',
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.featmap_alpha = featmap_alpha
        self.colormap = colormap

    @staticmethod
    def draw_featmap(featmap: torch.Tensor,
                     overlaid_image: Optional[np.ndarray] = None,
                     channel_reduction: Optional[str] = 'squeeze_mean',
                     topk: int = 20,
                     arrangement: Sequence[int] = (4, 5),
                     resize_shape: Optional[tuple] = None,
                     alpha: float = 0.5,
                     geometry: Optional[ImageGeometry] = None,
                     colormap: str = 'jet',
                     pred_layer: Optional[np.ndarray] = None) -> np.ndarray:
        """Drop-in for :meth:`mmengine.visualization.Visualizer.draw_featmap`.

        Same arguments and output for ``squeeze_mean`` / ``select_max`` / top-k / raw maps, plus
        ``pixel_wise_max``, ``geometry`` (undo letterbox/padding), ``colormap`` and ``pred_layer``
        (an RGBA layer of predictions, see :meth:`draw_instances_layer`, laid on each cell). The
        top-k grid is drawn with OpenCV instead of matplotlib.
        """
        method = build_reduction(channel_reduction, topk, arrangement)
        if overlaid_image is None:
            h, w = (resize_shape or featmap.shape[-2:])
            image: np.ndarray = np.zeros((int(h), int(w), 3), dtype=np.uint8)
            alpha_used = 1.0
        else:
            image = overlaid_image
            if resize_shape is not None:
                import cv2
                image = cv2.resize(image, tuple(int(v) for v in resize_shape[::-1]))
            alpha_used = alpha
        return render_featmap(featmap, image, method, geometry, alpha_used, colormap,
                              arrangement, pred_layer)

    # -- predictions -------------------------------------------------------------------------
    # DetLocalVisualizer draws boxes and labels with matplotlib on top of an ``imshow`` of the
    # image; resampling that image costs most of the time (~65 ms for 768x576 here). In "layer
    # mode" the same DetLocalVisualizer drawing calls run on a transparent canvas without the
    # image, and the RGBA layer is composited onto the image and onto every panel.
    _layer_mode = False

    def set_image(self, image: np.ndarray) -> None:
        if not self._layer_mode:
            return super().set_image(image)
        self._image = image.astype('uint8')
        self.width, self.height = image.shape[1], image.shape[0]
        self._default_font_size = max(np.sqrt(self.height * self.width) // 90, 10)
        self.fig_save.set_size_inches((self.width + 1e-2) / self.dpi,
                                      (self.height + 1e-2) / self.dpi)
        # ``cla()`` rebuilds ticks and spines (~23 ms, most of a layer's cost); with the axis off
        # it is enough to take away what the last drawing added.
        ax = self.ax_save
        for group in (ax.collections, ax.texts, ax.images, ax.patches, ax.lines):
            for artist in list(group):
                artist.remove()
        ax.axis(False)
        self.fig_save.patch.set_alpha(0.0)
        self.ax_save.patch.set_alpha(0.0)
        self.ax_save.set_xlim(0, self.width)
        self.ax_save.set_ylim(self.height, 0)

    def get_image(self) -> np.ndarray:
        if not self._layer_mode:
            return super().get_image()
        buf, (width, height) = self.fig_save_canvas.print_to_buffer()
        return np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 4).copy()

    def draw_instances_layer(self,
                             shape: Sequence[int],
                             data_sample=None,
                             score_thr: float = 0.3,
                             draw_pred: bool = True,
                             draw_gt: bool = False) -> Optional[np.ndarray]:
        """An ``(H, W, 4)`` RGBA layer with the sample's predictions (score > ``score_thr``)
        and/or ground truth, drawn by MMDet's ``DetLocalVisualizer``; ``None`` if empty."""
        if data_sample is None:
            return None
        meta = self.dataset_meta or {}
        classes, palette = meta.get('classes'), meta.get('palette')
        sets = []
        if draw_gt and 'gt_instances' in data_sample and len(data_sample.gt_instances):
            sets.append(data_sample.gt_instances.cpu())
        if draw_pred and 'pred_instances' in data_sample:
            pred = data_sample.pred_instances.cpu()
            pred = pred[pred.scores > score_thr]
            if len(pred):
                sets.append(pred)
        if not sets:
            return None
        h, w = int(shape[0]), int(shape[1])
        blank = np.zeros((h, w, 3), np.uint8)
        self._layer_mode = True
        try:
            with warnings.catch_warnings():
                # boxes reaching past the border are clipped by the canvas; MMEngine warns
                # once per box and label
                warnings.filterwarnings('ignore', message=r'Warning: The \w+ is out of bounds')
                layer = self._draw_sets(sets, blank, classes, palette)
        finally:
            self._layer_mode = False
            self.fig_save.patch.set_alpha(1.0)
            self.ax_save.patch.set_alpha(1.0)
        return layer

    def _draw_sets(self, sets, blank, classes, palette) -> Optional[np.ndarray]:
        layer = None
        for instances in sets:
            rgba = draw_instances(self, blank, instances, classes, palette)
            layer = rgba if layer is None else composite_rgba(layer, rgba)
        return layer

    def draw_instances_on(self,
                          image_rgb: np.ndarray,
                          data_sample=None,
                          score_thr: float = 0.3,
                          draw_pred: bool = True,
                          draw_gt: bool = False) -> np.ndarray:
        """``image_rgb`` with predictions and/or GT drawn by ``DetLocalVisualizer``."""
        layer = self.draw_instances_layer(image_rgb.shape[:2], data_sample, score_thr,
                                          draw_pred, draw_gt)
        return image_rgb if layer is None else blend_rgba(image_rgb, layer)

    def draw_featmaps(self,
                      featmaps: Dict[str, torch.Tensor],
                      image_rgb: np.ndarray,
                      data_sample=None,
                      geometry: Optional[ImageGeometry] = None,
                      channel_reduction: Optional[str] = 'select_max',
                      topk: int = 4,
                      arrangement: Sequence[int] = (2, 2),
                      score_thr: float = 0.3,
                      draw_pred: bool = True,
                      draw_gt: bool = False,
                      alpha: Optional[float] = None) -> np.ndarray:
        """One image with a titled panel per feature map (``{name: (C, H, W)}``).

        Predictions are drawn once by ``DetLocalVisualizer``; their covered pixels are found
        once and composited over every panel.
        """
        method = build_reduction(channel_reduction, topk, arrangement)
        alpha = self.featmap_alpha if alpha is None else alpha
        pred_layer = self.draw_instances_layer(image_rgb.shape[:2], data_sample, score_thr,
                                               draw_pred, draw_gt)
        layer = None if pred_layer is None else SparseLayer(pred_layer)
        panels = [(f"{name}  ({'x'.join(str(s) for s in fm.shape)}, {describe(method)})",
                   method.compute(fm)) for name, fm in featmaps.items()]
        note = (f'no detections above score_thr={score_thr}'
                if draw_pred and pred_layer is None and data_sample is not None else None)
        return self._compose(panels, image_rgb, geometry, arrangement, layer, alpha, note)

    def _panels(self, groups: Sequence[Tuple[str, Sequence[Map2D]]], image_rgb: np.ndarray,
                geometry: Optional[ImageGeometry], arrangement: Sequence[int],
                layer: Optional[SparseLayer], alpha: float) -> List[Tuple[str, np.ndarray]]:
        """``[(name, panel)]``: each group's maps drawn on the image, predictions on top."""
        return [(name, finish_cells(render_cells(maps, image_rgb, geometry, alpha,
                                                 self.colormap), maps, arrangement, layer))
                for name, maps in groups]

    def _compose(self, groups: Sequence[Tuple[str, Sequence[Map2D]]], image_rgb: np.ndarray,
                 geometry: Optional[ImageGeometry], arrangement: Sequence[int],
                 layer: Optional[SparseLayer], alpha: float, note: Optional[str]) -> np.ndarray:
        """One image with a panel per ``(title, maps)`` group, and ``note`` on top if given."""
        panels = self._panels(groups, image_rgb, geometry, arrangement, layer, alpha)
        if not panels:
            return image_rgb if layer is None else blend_rgba(image_rgb, layer)
        out = auto_arrange([add_title(panel, title) for title, panel in panels])
        return out if note is None else add_title(out, note)

    def record_boxes(self, record: ResultRecord, scale: float = 1.0, draw_pred: bool = True,
                     draw_gt: bool = False) -> List[BoxItem]:
        """The record's detections (highest score first) and/or ground truth as boxes with
        labels (``bird 0.69``), scaled by ``scale``."""
        meta = self.dataset_meta or {}
        classes, palette = meta.get('classes') or (), meta.get('palette')
        items = []
        if draw_gt and 'gt_bboxes' in record.arrays:
            for box, label in zip(np.asarray(record.arrays['gt_bboxes'], np.float32),
                                  np.asarray(record.arrays['gt_labels'], np.int64)):
                name = classes[label] if label < len(classes) else str(label)
                items.append(BoxItem(box * scale, (0, 200, 0), f'GT {name}'))
        if draw_pred:
            for d in sorted(record.detections, key=lambda d: -d.score):
                name = d.class_name if d.class_name is not None else (
                    classes[d.label] if d.label < len(classes) else str(d.label))
                items.append(BoxItem(np.asarray(d.bbox, np.float32) * scale,
                                     palette_color(d.label, palette), label_text(name, d.score)))
        return items

    def record_sheet(self, record: ResultRecord, image_rgb: np.ndarray, scale: float = 1.0,
                     arrangement: Sequence[int] = (2, 2), align: bool = True,
                     draw_pred: bool = True, draw_gt: bool = False,
                     options: Optional[FigureOptions] = None) -> Sheet:
        """A feature-map record as a :class:`Sheet`: a panel per layer titled with the layer,
        its shape and the reduction, the detections on every panel (labels placed so that none
        covers another), a note when nothing was detected, a colour bar on request.

        ``image_rgb`` is the original image scaled by ``scale`` (boxes are scaled with it).
        """
        options = options or FigureOptions()
        boxes = self.record_boxes(record, scale, draw_pred, draw_gt)
        what = record.info.get('method', '')
        geometry = record.geometry if align else None
        panels = []
        for name, maps in _layer_groups(record):
            shape = 'x'.join(str(s) for s in maps[0].meta.get('shape') or [])
            cells = render_cells(maps, image_rgb, geometry, self.featmap_alpha, self.colormap)
            title = f'{name}  ({shape}, {what})'
            if len(cells) == 1:
                panels.append(Panel(cells[0], boxes, title=title))
                continue
            rows, cols = grid_shape(len(cells), arrangement)
            h, w = cells[0].shape[:2]
            rects = [((i % cols) * w, (i // cols) * h, w, h) for i in range(len(cells))]
            panels.append(Panel(tile(cells, rows, cols), boxes, title=title, cells=rects,
                                cell_captions=[m.label or '' for m in maps]))
        thr = record.info.get('score_thr')
        note = (f'no detections above score_thr={thr if thr is not None else "?"}'
                if draw_pred and not record.detections else '')
        if not panels:
            return Sheet([Panel(image_rgb.copy(), boxes)], 1, title=note)
        sheet = Sheet(panels, int(math.ceil(math.sqrt(len(panels)))), pad=4, title=note)
        if options.colorbar:
            sheet.footers.append(colorbar_panel(sheet.placements()[0][0], self.colormap))
        return sheet

    def record_panels(self, record: ResultRecord, image_rgb: np.ndarray, scale: float = 1.0,
                      arrangement: Sequence[int] = (2, 2), align: bool = True,
                      draw_pred: bool = True, draw_gt: bool = False,
                      options: Optional[FigureOptions] = None
                      ) -> List[Tuple[str, np.ndarray, np.ndarray]]:
        """``[(layer, titled panel, untitled panel)]`` of a feature-map record, drawn."""
        sheet = self.record_sheet(record, image_rgb, scale, arrangement, align, draw_pred,
                                  draw_gt, options)
        style = style_of(options)
        out = []
        for (name, _), panel in zip(_layer_groups(record), sheet.panels):
            bare = dataclasses.replace(panel, title='')
            out.append((name, panel.render(style), bare.render(style)))
        return out

    def draw_record(self, record: ResultRecord, image_rgb: np.ndarray, scale: float = 1.0,
                    arrangement: Sequence[int] = (2, 2), align: bool = True,
                    draw_pred: bool = True, draw_gt: bool = False,
                    options: Optional[FigureOptions] = None) -> np.ndarray:
        """One image with a titled panel per captured map of a feature-map record."""
        return self.record_sheet(record, image_rgb, scale, arrangement, align, draw_pred,
                                 draw_gt, options).render(style_of(options))


def _layer_groups(record: ResultRecord) -> List[Tuple[str, List[Map2D]]]:
    """The maps of a feature-map record grouped by layer, in record order."""
    groups: Dict[str, List[Map2D]] = {}
    for m in record.maps.values():
        groups.setdefault(m.meta['layer'], []).append(m)
    return list(groups.items())


def describe(method) -> str:
    """How a panel's channels were reduced, for its title."""
    k = getattr(method, 'topk', None)
    if k is not None:
        return f'top-{k} channels'
    return getattr(method, 'name', type(method).__name__)


def render_featmap(featmap,
                   image_rgb: np.ndarray,
                   method: MapMethod,
                   geometry: Optional[ImageGeometry] = None,
                   alpha: float = 0.5,
                   colormap: str = 'jet',
                   arrangement: Optional[Sequence[int]] = None,
                   pred_layer: Optional[np.ndarray] = None) -> np.ndarray:
    """Reduce a ``(C, H, W)`` feature map with ``method`` and render it on ``image_rgb``."""
    return render_reduced(method.compute(featmap), image_rgb, geometry, alpha, colormap,
                          arrangement, pred_layer)
