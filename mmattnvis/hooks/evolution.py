"""Training-time evolution: what the hooks drew for fixed samples, epoch after epoch.

Each drawing of a fixed sample is saved as a record (``<root>/evolution/<Hook>/<sample>/
epoch_<E>.npz``: the rendered cells of each row, their labels, per-epoch scalars and metadata such
as the ground-truth object a row follows), so the evolution figure can be built at the end of
training, after a resume, or on demand (:func:`build_evolution`) from the saved records alone.
"""
import json
import os
import os.path as osp
import re
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..render.image import add_title, put_label
from ..structures.boxes import box_iou
from ..utils.errors import UserInputError

_EPOCH_FILE = re.compile(r'^epoch_(\d+)\.npz$')


def resolve_fixed_samples(dataset, spec: Union[int, Sequence[Union[int, str]]]) -> List[int]:
    """Dataset indices of the fixed samples: the first ``spec`` ones, or the listed indices and
    image file names (matched on the path's end, e.g. ``'000012.jpg'`` or ``'val/000012.jpg'``)."""
    n = len(dataset)
    if isinstance(spec, int):
        return list(range(min(spec, n)))
    names: Dict[str, int] = {}
    out: List[int] = []
    for item in spec:
        if isinstance(item, int):
            if not -n <= item < n:
                raise UserInputError(f'fixed_samples: index {item} is outside the val set '
                                     f'(0..{n - 1})')
            out.append(item % n)
            continue
        if not names:
            for i in range(n):
                names[osp.normpath(dataset.get_data_info(i)['img_path'])] = i
        key = osp.normpath(item)
        hits = [i for path, i in names.items()
                if path == key or path.endswith(os.sep + key)]
        if not hits:
            raise UserInputError(f'fixed_samples: no image {item!r} in the val set')
        out.append(hits[0])
    return out


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


def evolution_name(tag: str, hook_name: str) -> str:
    """The name of a sample's evolution figure: ``<tag>_<task>_evolution`` with the hook's task
    (``FeatMapVisHook`` -> ``featmap``), so two hooks of one run never share a file name nor a
    vis-backend tag."""
    task = hook_name[:-len('VisHook')] if hook_name.endswith('VisHook') else hook_name
    return f'{tag}_{task.lower() or hook_name}_evolution'


class EvolutionStore:
    """Per-epoch records of one hook under ``<root>/evolution/<hook_name>/``."""

    def __init__(self, root: str, hook_name: str) -> None:
        self.root = osp.join(root, 'evolution', hook_name)
        self.hook_name = hook_name

    def _dir(self, tag: str) -> str:
        return osp.join(self.root, tag)

    def save(self, tag: str, epoch: int, evo: Dict[str, Any]) -> None:
        """Write one record atomically (a partly written file never replaces a good one)."""
        folder = self._dir(tag)
        os.makedirs(folder, exist_ok=True)
        rows = evo.get('rows', [])
        meta = {'epoch': int(epoch), 'keys': [str(r[0]) for r in rows],
                'labels': [str(r[1]) for r in rows],
                'scalars': {k: float(v) for k, v in evo.get('scalars', {}).items()},
                'meta': evo.get('meta', {})}
        arrays = {f'cell_{i}': np.ascontiguousarray(r[2], np.uint8) for i, r in enumerate(rows)}
        fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.npz', dir=folder)
        try:
            with os.fdopen(fd, 'wb') as f:
                np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)
            os.replace(tmp, osp.join(folder, f'epoch_{int(epoch):04d}.npz'))
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    def tags(self) -> List[str]:
        if not osp.isdir(self.root):
            return []
        return sorted(d for d in os.listdir(self.root) if osp.isdir(osp.join(self.root, d)))

    def load(self, tag: str) -> List[Dict[str, Any]]:
        """The records of one sample, by epoch."""
        folder = self._dir(tag)
        out = []
        for name in sorted(os.listdir(folder)):
            if not _EPOCH_FILE.match(name):
                continue
            with np.load(osp.join(folder, name), allow_pickle=False) as data:
                meta = json.loads(str(data['meta']))
                meta['cells'] = [data[f'cell_{i}'] for i in range(len(meta['keys']))]
            out.append(meta)
        return sorted(out, key=lambda r: r['epoch'])

    def drop_after(self, epoch: int) -> None:
        """Forget records of epochs after ``epoch`` (a fresh run: all of them)."""
        for tag in self.tags():
            folder = self._dir(tag)
            for name in os.listdir(folder):
                m = _EPOCH_FILE.match(name)
                if m and int(m.group(1)) > epoch:
                    os.remove(osp.join(folder, name))
            if not any(_EPOCH_FILE.match(n) for n in os.listdir(folder)):
                shutil.rmtree(folder, ignore_errors=True)

    def figures(self, cell_width: int = 224
                ) -> Iterator[Tuple[str, np.ndarray, List[np.ndarray]]]:
        """``(tag, evolution figure, per-epoch frames)`` for every sample with records."""
        for tag in self.tags():
            records = self.load(tag)
            if records:
                title = evolution_name(tag, self.hook_name)[:-len('_evolution')]
                yield (tag, ) + evolution_figure(records, cell_width, title=title)

    @staticmethod
    def write_video(path_stem: str, frames: Sequence[np.ndarray], kind: str = 'gif',
                    seconds_per_frame: float = 0.8) -> str:
        """An animated GIF (or MP4 with imageio-ffmpeg) of the per-epoch frames."""
        import imageio.v2 as imageio
        h = max(f.shape[0] for f in frames)
        w = max(f.shape[1] for f in frames)
        even: List[Any] = [_pad(f, h + h % 2, w + w % 2) for f in frames]
        path = f'{path_stem}.{kind}'
        folder = osp.dirname(osp.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=f'.{kind}', dir=folder)
        os.close(fd)
        try:
            if kind == 'gif':
                imageio.mimsave(tmp, even, format='GIF', duration=seconds_per_frame, loop=0)
            else:
                imageio.mimsave(tmp, even, format='FFMPEG', fps=1.0 / seconds_per_frame)
            os.replace(tmp, path)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise
        return path


def build_evolution(root: str, out_dir: Optional[str] = None, cell_width: int = 224,
                    video: Optional[str] = 'gif') -> List[str]:
    """Evolution figures (and videos) from saved records, e.g. after training stopped early.

    Args:
        root: A hook's ``out_dir`` (or ``work_dir/mmattnvis``), holding ``evolution/``.
        out_dir: Where to write (default: next to the records).
    """
    from ..utils.cli import write_image_atomic
    base = osp.join(root, 'evolution')
    if not osp.isdir(base):
        raise UserInputError(f'no evolution records under {root} (expected {base}/)')
    written = []
    for hook_name in sorted(os.listdir(base)):
        store = EvolutionStore(root, hook_name)
        target = out_dir or store.root
        for tag, figure, frames in store.figures(cell_width):
            name = evolution_name(tag, hook_name)
            path = osp.join(target, f'{name}.png')
            write_image_atomic(path, figure)
            written.append(path)
            if video and len(frames) > 1:
                written.append(store.write_video(osp.join(target, name), frames, video))
    return written


def _pad(img: np.ndarray, h: int, w: int, fill: int = 255) -> np.ndarray:
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
            column.append(_pad(cell, cell_h, cell_width))
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
