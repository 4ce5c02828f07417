"""The figure sinks of the image tools: each draws one result record and writes its figure
(for head ablation also its CSV table), as :class:`~mmattnvis.apis.image_loop.ImageLoop` calls
them (``writer(path, image_bgr, record) -> written path``).

:class:`FigureOptions` (the shared figure flags) is re-exported here for the shells.
"""
import csv
import io
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..render.layout import BoxItem, Panel, Sheet, label_text, palette_color
from ..render.options import FigureOptions
from ..structures import ResultRecord
from ..structures.detection import Detection
from ..utils.fileio import write_text_atomic
from ..visualization import DetectionFigure, FeatMapVisualizer
from ..visualization.figure_output import write_figure
from .ablation import COLUMNS, format_table, setting_detections
from .inference import bgr_to_rgb
from .records import output_path

__all__ = ['AblationFigureWriter', 'DetectionFigureWriter', 'FigureOptions']


class DetectionFigureWriter:
    """The per-detection figure (a column per detection or point, a row per map) of attention
    and explainer records, written to ``<out_dir>/<image's relative stem><ext>``.

    Args:
        out_dir: Where figures are written.
        root: The folder the images' output names are relative to.
        dataset_meta: The model's ``dataset_meta`` (class names and colours).
        title: ``title(path, record)``: the figure's title.
        note: Written on the image when the record has no column (no detection).
        alpha: Heat-map weight.
        colormap: OpenCV colormap name.
        cell_width: Width of each cell in pixels.
        options: The figure flags (format, boxes, labels, colour bar, panels).
        task: Names the visualizer instance (``mmattnvis_<task>_<id>``).
    """

    def __init__(self, out_dir: str, root: str, dataset_meta: Any,
                 title: Callable[[str, ResultRecord], str], note: str = '',
                 alpha: float = 0.5, colormap: str = 'jet', cell_width: int = 320,
                 options: Optional[FigureOptions] = None, task: str = 'figure') -> None:
        self.out_dir = out_dir
        self.root = root
        self.title = title
        self.note = note
        self.options = options or FigureOptions()
        vis = FeatMapVisualizer(name=f'mmattnvis_{task}_{id(self)}')
        vis.dataset_meta = dataset_meta
        self.figure = DetectionFigure(vis, alpha, colormap, cell_width, self.options)

    def __call__(self, path: str, image_bgr: np.ndarray, record: ResultRecord) -> str:
        sheet = self.figure.record_sheet(record, bgr_to_rgb(image_bgr), self.title(path, record),
                                         self.note)
        out = output_path(self.out_dir, path, self.root, ext=self.options.extension())
        write_figure(out, sheet, self.options)
        return out


class AblationFigureWriter:
    """Head ablation's outputs per image: a panel per setting (its detections, how many were
    lost and gained) as ``<stem>_ablation<ext>``, and the table as ``<stem>_ablation.csv``;
    :meth:`print_table` prints the table.

    Args:
        out_dir: Where figures and tables are written.
        root: The folder the images' output names are relative to.
        dataset_meta: The model's ``dataset_meta`` (class names and colours).
        part: The ablated attention (in the title).
        score_thr: Score threshold (in the title).
        iou_thr: IoU that matches detections (in the title).
        cell_width: Width of each panel in pixels.
        options: The figure flags.
        heads_layers: ``(heads, layers)`` of the model (printed above each table).
    """

    def __init__(self, out_dir: str, root: str, dataset_meta: Any,
                 part: str, score_thr: float, iou_thr: float, cell_width: int = 320,
                 options: Optional[FigureOptions] = None,
                 heads_layers: Sequence[int] = (0, 0)) -> None:
        self.out_dir = out_dir
        self.root = root
        self.meta = dataset_meta
        self.part = part
        self.score_thr = score_thr
        self.iou_thr = iou_thr
        self.cell_width = cell_width
        self.options = options or FigureOptions()
        self.heads_layers = tuple(heads_layers)

    @staticmethod
    def rows(record: ResultRecord) -> List[Dict[str, Any]]:
        """The table's rows (one per setting) of an ablation record."""
        return [setting['row'] for setting in record.info['settings']]

    def __call__(self, path: str, image_bgr: np.ndarray, record: ResultRecord) -> str:
        rgb = bgr_to_rgb(image_bgr)
        w = self.cell_width
        panels = []
        for setting in record.info['settings']:
            row = setting['row']
            cell = cv2.resize(rgb, (w, max(1, round(rgb.shape[0] * w / rgb.shape[1]))),
                              interpolation=cv2.INTER_AREA)
            title = f"{setting['name']}: {row['detections']} det, -{row['lost']} +{row['gained']}"
            boxes = ablation_boxes(setting_detections(setting), w / rgb.shape[1], self.meta)
            panels.append(Panel(cell, boxes, caption=title))
        table = io.StringIO(newline='')
        writer = csv.DictWriter(table, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows(record))
        write_text_atomic(output_path(self.out_dir, path, self.root, '_ablation', '.csv'),
                          table.getvalue())
        sheet = Sheet(panels, min(4, len(panels)), pad=3,
                      title=f'{osp.basename(path)}: {self.part} heads off '
                      f'(score > {self.score_thr}, IoU >= {self.iou_thr})')
        out = output_path(self.out_dir, path, self.root, '_ablation', self.options.extension())
        write_figure(out, sheet, self.options)
        return out

    def print_table(self, path: str, record: ResultRecord) -> None:
        """Print the image's table under ``<name> (<part>, H heads x L layers)``."""
        heads, layers = self.heads_layers
        print(f'\n{osp.basename(path)} ({self.part}, {heads} heads x {layers} layers)')
        print(format_table(self.rows(record)))


def ablation_boxes(dets: Sequence[Detection], scale: float,
                   meta: Any) -> List[BoxItem]:
    """Boxes and labels (``bird 0.69``) at the cell's scale, highest score first; the figure
    places the labels so that none covers another (nor the panel's caption)."""
    classes = (meta or {}).get('classes') or ()
    palette = (meta or {}).get('palette')
    out = []
    for d in sorted(dets, key=lambda d: -d.score):
        name = classes[d.label] if d.label < len(classes) else str(d.label)
        out.append(BoxItem([float(v) * scale for v in d.bbox], palette_color(d.label, palette),
                           label_text(name, d.score)))
    return out
