"""The evolution figure of training-time drawings: columns = epochs, rows = what a hook drew
for one fixed sample (a layer, or a ground-truth object with the query matched to it), the
per-epoch scalars plotted underneath; the hooks save and load the records
(:mod:`mmattnvis.hooks.evolution`).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..render.image import add_title, put_label
from ..structures.boxes import box_iou


def match_to_ground_truth(gt_boxes: np.ndarray,
                          pred_boxes: np.ndarray) -> List[Tuple[int, int, float]]:
    """One prediction per ground-truth object by Hungarian matching on IoU (as DETR trains).

    Returns:
        ``[(gt_index, pred_index, iou)]`` for every ground-truth box (while predictions last),
        in ground-truth order, so a row keyed by ``gt_index`` follows one object across epochs.
    """
    from scipy.optimize import linear_sum_assignment
    if len(gt_boxes) == 0 or len(pred_boxes) == 0:
        return []
    iou = box_iou(np.asarray(gt_boxes, np.float32).reshape(-1, 4),
                  np.asarray(pred_boxes, np.float32).reshape(-1, 4))
    rows, cols = linear_sum_assignment(-iou)
    return sorted((int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols))


def pad_to(img: np.ndarray, h: int, w: int, fill: int = 255) -> np.ndarray:
    """``img`` in the top-left corner of an ``h`` x ``w`` RGB canvas of ``fill``."""
    out = np.full((h, w, 3), fill, np.uint8)
    out[:img.shape[0], :img.shape[1]] = img
    return out


def _fit(cell: np.ndarray, width: int) -> np.ndarray:
    h, w = cell.shape[:2]
    if w == width:
        return cell.copy()
    return cv2.resize(cell, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def evolution_figure(records: Sequence[Dict[str, Any]], cell_width: int = 224,
                     title: str = '') -> Tuple[np.ndarray, List[np.ndarray]]:
    """Columns = epochs, rows = what was drawn (keyed, so a row follows one layer or object);
    the per-epoch scalars are plotted underneath.

    Returns:
        ``(figure, frames)``: the grid, and one frame per epoch (its column, titled) for a video.
    """
    keys: List[str] = []
    labels: Dict[str, str] = {}
    for rec in records:
        for key, label in zip(rec['keys'], rec['labels']):
            if key not in keys:
                keys.append(key)
                labels[key] = label
    cells: Dict[Tuple[int, str], np.ndarray] = {}
    cell_h = 1
    for e, rec in enumerate(records):
        for key, label, cell in zip(rec['keys'], rec['labels'], rec['cells']):
            fitted = put_label(_fit(cell, cell_width), label)
            cells[(e, key)] = fitted
            cell_h = max(cell_h, fitted.shape[0])
    pad = 3
    header_h = 24
    width = len(records) * (cell_width + pad) - pad
    grid = np.full((header_h + max(1, len(keys)) * (cell_h + pad), max(width, 1), 3), 255,
                   np.uint8)
    frames = []
    for e, rec in enumerate(records):
        x = e * (cell_width + pad)
        cv2.putText(grid, f'epoch {rec["epoch"]}', (x + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
        column = []
        for r, key in enumerate(keys):
            cell = cells.get((e, key))
            if cell is None:
                cell = np.full((cell_h, cell_width, 3), 255, np.uint8)
            y = header_h + r * (cell_h + pad)
            grid[y:y + cell.shape[0], x:x + cell.shape[1]] = cell
            column.append(pad_to(cell, cell_h, cell_width))
        frame = np.concatenate(column, 0) if column else np.full((cell_h, cell_width, 3), 255,
                                                                 np.uint8)
        frames.append(add_title(frame, f'{title} epoch {rec["epoch"]}'))
    plot = scalar_plot(records, grid.shape[1])
    if plot is not None:
        grid = np.concatenate([grid, plot], 0)
    return add_title(grid, f'{title}: evolution over training'), frames


def scalar_plot(records: Sequence[Dict[str, Any]], width: int) -> Optional[np.ndarray]:
    """A line chart of the per-epoch scalars (``None`` when there are none)."""
    names = sorted({k for r in records for k in r.get('scalars', {})})
    if not names:
        return None
    import matplotlib
    matplotlib.use('Agg', force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    dpi = 100
    fig = Figure(figsize=(max(width, 320) / dpi, 2.2), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    epochs = [r['epoch'] for r in records]
    for name in names:
        ax.plot(epochs, [r.get('scalars', {}).get(name, np.nan) for r in records], marker='o',
                label=name)
    ax.set_xlabel('epoch')
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[..., :3]
    if img.shape[1] != width:
        img = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])),
                         interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)
