"""Per-detection figures (attention, relevance, CAM, D-RISE): a column per detection or point,
a row per map."""
from typing import Any, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from ..render.geometry import ImageGeometry, align_to_image
from ..render.image import add_title, blend_rgba, heatmap_overlay, put_label, tile
from ..render.layout import (
    BoxItem,
    Panel,
    Sheet,
    colorbar_panel,
    label_text,
    palette_color,
    points_legend_panel,
)
from ..render.options import FigureOptions
from ..render.points import LEVEL_COLORS, draw_marker, draw_points
from ..structures import Map2D, ResultRecord
from ..structures.detection import Detection
from .figure_output import style_of


def detection_sample(det: Detection):
    """A ``DetDataSample`` holding one detection (for DetLocalVisualizer)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    sample = DetDataSample()
    sample.pred_instances = InstanceData(
        bboxes=torch.as_tensor(det.bbox, dtype=torch.float32)[None],
        scores=torch.tensor([det.score]), labels=torch.tensor([det.label]))
    return sample


class DetectionFigure:
    """The per-detection figure of attention, relevance and explainer (CAM, D-RISE) records: a
    column per detection (or point), a row per map.

    Boxes, labels and captions are drawn at the cell's scale with one label size and one label
    format (``bird 0.69``) in every column, labels placed so that none covers another.

    Args:
        visualizer: A :class:`FeatMapVisualizer` (its ``dataset_meta`` names and colours
            classes).
        alpha: Heat-map weight.
        colormap: OpenCV colormap name.
        cell_width: Width of each cell in pixels (height keeps the image's aspect).
        options: :class:`FigureOptions` (boxes, labels, colour bar); default all on, no bar.
    """

    def __init__(self, visualizer, alpha: float = 0.5, colormap: str = 'jet',
                 cell_width: int = 320, options: Optional[FigureOptions] = None) -> None:
        self.visualizer = visualizer
        self.alpha = alpha
        self.colormap = colormap
        self.cell_width = cell_width
        self.options = options or FigureOptions()

    def _box_item(self, det: Detection, scale: float) -> BoxItem:
        meta = getattr(self.visualizer, 'dataset_meta', None) or {}
        classes = meta.get('classes') or ()
        name = det.class_name if det.class_name is not None else (
            classes[det.label] if det.label < len(classes) else str(det.label))
        return BoxItem(np.asarray(det.bbox, np.float32) * scale,
                       palette_color(det.label, meta.get('palette')), label_text(name, det.score))

    def _cell(self, image_rgb: np.ndarray, m: Map2D, geometry: Optional[ImageGeometry],
              box_layer: Optional[np.ndarray]) -> np.ndarray:
        if 'points' in m.meta:
            cell = draw_points(image_rgb, m.meta['points'])
        else:
            # A strided token grid: cell j covers input pixels [s*j, s*(j+1)) (inferred from
            # the input and grid sizes when the method did not record the stride).
            stride = m.meta.get('stride') or 'auto'
            aligned = align_to_image(m.data, geometry, out_shape=image_rgb.shape[:2],
                                     stride=stride)
            cell = heatmap_overlay(aligned, image_rgb, self.alpha, self.colormap)
        if box_layer is not None:
            cell = blend_rgba(cell, box_layer)
        return cell

    def _mark(self, cell: np.ndarray, meta: dict, src_shape) -> np.ndarray:
        """The reference point (and its token cell) drawn at the output scale."""
        ref = meta.get('reference')
        if ref is None:
            return cell
        s = cell.shape[1] / src_shape[1]
        box = meta.get('token_box')
        box = None if box is None else tuple(v * s for v in box)
        return draw_marker(cell, (ref[0] * s, ref[1] * s), box)

    def _resize(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        if w == self.cell_width:
            return img
        return cv2.resize(img, (self.cell_width, max(1, round(h * self.cell_width / w))),
                          interpolation=cv2.INTER_AREA)

    def column_panels(self, image_rgb: np.ndarray, dets: Sequence[Detection],
                      rows: Sequence[Map2D], geometry: Optional[ImageGeometry],
                      header: str = '', reference: Optional[dict] = None) -> List[Panel]:
        """Panels of one column: ``dets`` on the image, then one panel per map (each with the
        same boxes).

        ``reference`` (``{'reference': (x, y), 'token_box': box}``) marks a point on the
        header; maps whose ``meta`` holds a ``reference`` get the marker too.
        """
        # Everything is drawn at the cell's scale: boxes, labels and points keep their size
        # however large the photo (drawn at full size, a 4000-px image left 1-px lines).
        small = self._resize(image_rgb)
        scale = small.shape[1] / image_rgb.shape[1]
        boxes = [self._box_item(d, scale) for d in sorted(dets, key=lambda d: -d.score)]
        head = self._mark(small, reference or {}, image_rgb.shape)
        panels = [Panel(head, boxes, caption=header)]
        for m in rows:
            if 'points' in m.meta and scale != 1:
                pts = np.array(m.meta['points'], np.float32, copy=True)
                pts[:, :2] *= scale
                m = Map2D(m.data, m.label, dict(m.meta, points=pts))
            cell = self._mark(self._cell(small, m, geometry, None), m.meta, image_rgb.shape)
            panels.append(Panel(cell, boxes, caption=m.label))
        return panels

    def column(self, image_rgb: np.ndarray, det: Optional[Detection],
               rows: Sequence[Map2D], geometry: Optional[ImageGeometry],
               header: Optional[str] = None,
               reference: Optional[dict] = None) -> List[np.ndarray]:
        """Cells of one column as images: the detection on the image, then one cell per map."""
        header = header or (f'query {det.query}' if det is not None else '')
        panels = self.column_panels(image_rgb, [det] if det is not None else [], rows, geometry,
                                    header, reference)
        return [p.render(style_of(self.options)) for p in panels]

    def sheet(self, columns: Sequence[List[Panel]], title: str = '', levels: int = 0) -> Sheet:
        """Columns side by side (shorter columns padded with white), the title above, the
        colour bar (``options.colorbar``) and, for sampling points of ``levels`` feature levels,
        their legend below."""
        rows = max(len(c) for c in columns)
        h = max(p.image.shape[0] for c in columns for p in c)
        panels = []
        for r in range(rows):
            for c in columns:
                panels.append(c[r] if r < len(c) else
                              Panel(np.full((h, self.cell_width, 3), 255, np.uint8)))
        sheet = Sheet(panels, len(columns), pad=3, title=title)
        width = sheet.placements()[0][0]
        if levels:
            sheet.footers.append(points_legend_panel(width, levels, LEVEL_COLORS))
        if self.options.colorbar and not levels:
            sheet.footers.append(colorbar_panel(width, self.colormap))
        return sheet

    def figure(self, columns: Sequence[List[np.ndarray]], title: str = '') -> np.ndarray:
        """Arrange already drawn columns side by side (shorter columns padded with white)."""
        rows = max(len(c) for c in columns)
        h = max(cell.shape[0] for c in columns for cell in c)
        grid = []
        for r in range(rows):
            for c in columns:
                cell = c[r] if r < len(c) else np.full((h, self.cell_width, 3), 255, np.uint8)
                if cell.shape[0] != h:
                    pad = np.full((h, cell.shape[1], 3), 255, np.uint8)
                    pad[:cell.shape[0]] = cell
                    cell = pad
                grid.append(cell)
        return add_title(tile(grid, rows, len(columns), pad=3), title)

    def record_sheet(self, record: ResultRecord, image_rgb: np.ndarray, title: str,
                     note: str = '') -> Union[Sheet, Panel]:
        """The figure of one record with ``info['columns']`` (see :func:`columns_of`) as a
        :class:`Sheet`; ``note`` (on the image) when there is no column."""
        columns = columns_of(record)
        if not columns:
            return Panel(self._resize(image_rgb.copy()), caption=note)
        aligned = all(m.meta.get('aligned') for _, _, maps in columns for m in maps)
        geometry = None if aligned else record.geometry
        points = [np.asarray(m.meta['points']) for _, _, maps in columns for m in maps
                  if 'points' in m.meta]
        levels = max([int(p[:, 3].max()) + 1 for p in points if len(p)] or [0])
        levels = levels or (1 if points else 0)
        cols = []
        for col, head, rows in columns:
            header = col.get('header')
            ref = rows[0].meta if rows else {}
            if col['kind'] == 'image':  # every detection on the image
                cols.append(self.column_panels(image_rgb, record.detections, rows, geometry,
                                               header or 'image-level'))
            elif col['kind'] == 'all':  # rollout: the mean over tokens
                cols.append(self.column_panels(image_rgb, [], rows, geometry,
                                               header or 'all tokens'))
            elif col['kind'] == 'point':
                cols.append(self.column_panels(image_rgb, [], rows, geometry,
                                               header or f'point {head[0]:g},{head[1]:g}',
                                               reference=ref))
            else:
                box = self._box_item(head, 1.0)
                cols.append(self.column_panels(image_rgb, [head], rows, geometry,
                                               header or f'q{head.query} {box.text}'))
        return self.sheet(cols, title, levels)

    def draw_record(self, record: ResultRecord, image_rgb: np.ndarray, title: str,
                    note: str = '') -> np.ndarray:
        """:meth:`record_sheet` drawn as an RGB image."""
        fig = self.record_sheet(record, image_rgb, title, note)
        out = fig.render(style_of(self.options))
        return out if isinstance(fig, Sheet) else add_title(out, '')

    def note(self, image_rgb: np.ndarray, text: str) -> np.ndarray:
        """The image with a message (e.g. no detections above the threshold)."""
        return add_title(put_label(self._resize(image_rgb.copy()), text), '')


def columns_of(record: ResultRecord) -> List[Tuple[dict, Any, List[Map2D]]]:
    """The figure columns of a record: ``(column info, detection | (x, y) | None, maps)``.

    ``record.info['columns']`` lists them (``kind``: ``detection`` with its rank, ``point``,
    ``all`` tokens, or ``image``; optional ``header``); the maps of column ``j`` have
    ``meta['column'] == j``.
    """
    by_rank = {d.rank: d for d in record.detections}
    cols: List[Tuple[dict, Any, List[Map2D]]] = []
    for j, col in enumerate(record.info.get('columns', [])):
        maps = [m for m in record.maps.values() if m.meta.get('column') == j]
        head: Any = None
        if col['kind'] == 'detection':
            head = by_rank[col['detection']]
        elif col['kind'] == 'point':
            head = tuple(col['point'])
        cols.append((col, head, maps))
    return cols
