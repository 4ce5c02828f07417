"""Per-detection figures (attention, relevance, CAM, D-RISE): a column per detection or point,
a row per map."""
import dataclasses
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ..render.geometry import ImageGeometry, align_to_image
from ..render.image import add_title, blend_rgba, heatmap_overlay, put_label, tile
from ..render.points import draw_marker, draw_points
from ..structures import Map2D, ResultRecord
from ..structures.detection import Detection
from .samples import drawing_sample


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

    Args:
        visualizer: A :class:`FeatMapVisualizer` (draws the boxes with DetLocalVisualizer).
        alpha: Heat-map weight.
        colormap: OpenCV colormap name.
        cell_width: Width of each cell in pixels (height keeps the image's aspect).
    """

    def __init__(self, visualizer, alpha: float = 0.5, colormap: str = 'jet',
                 cell_width: int = 320) -> None:
        self.visualizer = visualizer
        self.alpha = alpha
        self.colormap = colormap
        self.cell_width = cell_width

    def _box_layer(self, det: Detection, shape) -> Optional[np.ndarray]:
        return self.visualizer.draw_instances_layer(shape, detection_sample(det), score_thr=-1)

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

    def column(self, image_rgb: np.ndarray, det: Optional[Detection],
               rows: Sequence[Map2D], geometry: Optional[ImageGeometry],
               header: Optional[str] = None,
               reference: Optional[dict] = None) -> List[np.ndarray]:
        """Cells of one column: the detection on the image, then one cell per map.

        ``reference`` (``{'reference': (x, y), 'token_box': box}``) marks a point on the
        header; maps whose ``meta`` holds a ``reference`` get the marker too.
        """
        # Everything is drawn at the cell's scale: boxes, labels and points keep their size
        # however large the photo (drawn at full size, a 4000-px image left 1-px lines).
        small = self._resize(image_rgb)
        scale = small.shape[1] / image_rgb.shape[1]
        box_layer = None
        if det is not None:
            det_small = dataclasses.replace(det, bbox=np.asarray(det.bbox, np.float32) * scale)
            box_layer = self._box_layer(det_small, small.shape[:2])
        head = small if box_layer is None else blend_rgba(small, box_layer)
        head = self._mark(head, reference or {}, image_rgb.shape)
        cells = [put_label(head, header or (f'query {det.query}' if det is not None else ''))]
        for m in rows:
            if 'points' in m.meta and scale != 1:
                pts = np.array(m.meta['points'], np.float32, copy=True)
                pts[:, :2] *= scale
                m = Map2D(m.data, m.label, dict(m.meta, points=pts))
            cell = self._cell(small, m, geometry, box_layer)
            cells.append(put_label(self._mark(cell, m.meta, image_rgb.shape), m.label))
        return cells

    def figure(self, columns: Sequence[List[np.ndarray]], title: str = '') -> np.ndarray:
        """Arrange columns side by side (shorter columns padded with white)."""
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

    def draw_record(self, record: ResultRecord, image_rgb: np.ndarray, title: str,
                    note: str = '') -> np.ndarray:
        """The figure of one record with ``info['columns']`` (see :func:`columns_of`);
        ``note`` (on the image) when there is no column."""
        columns = columns_of(record)
        if not columns:
            return self.note(image_rgb, note)
        aligned = all(m.meta.get('aligned') for _, _, maps in columns for m in maps)
        geometry = None if aligned else record.geometry
        cols = []
        for col, head, rows in columns:
            header = col.get('header')
            ref = rows[0].meta if rows else {}
            if col['kind'] == 'image':  # every detection on the image
                sample = drawing_sample(record)
                layer = self.visualizer.draw_instances_layer(image_rgb.shape[:2], sample, -1.0)
                boxes = image_rgb if layer is None else blend_rgba(image_rgb, layer)
                cols.append(self.column(boxes, None, rows, geometry,
                                        header=header or 'image-level'))
            elif col['kind'] == 'all':  # rollout: the mean over tokens
                cols.append(self.column(image_rgb, None, rows, geometry,
                                        header=header or 'all tokens'))
            elif col['kind'] == 'point':
                cols.append(self.column(image_rgb, None, rows, geometry, reference=ref,
                                        header=header or f'point {head[0]:g},{head[1]:g}'))
            else:
                cls = head.class_name if head.class_name is not None else str(head.label)
                cols.append(self.column(image_rgb, head, rows, geometry,
                                        header=header or f'q{head.query} {cls} '
                                        f'{head.score:.2f}'))
        return self.figure(cols, title)

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
