"""Training-time evolution: what the hooks drew for fixed samples, epoch after epoch.

Each drawing of a fixed sample is saved as a record (``<root>/evolution/<Hook>/<sample>/
epoch_<E>.npz``: the rendered cells of each row, their labels, per-epoch scalars and metadata such
as the ground-truth object a row follows), so the evolution figure can be built at the end of
training, after a resume, or on demand (:func:`build_evolution`) from the saved records alone;
the figure itself is drawn by :mod:`mmattnvis.apis.evolution`.
"""
import json
import os
import os.path as osp
import re
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..apis.evolution import (  # noqa: F401  (match_to_ground_truth: importable from here)
    evolution_figure,
    match_to_ground_truth,
    pad_to,
)
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
        even: List[Any] = [pad_to(f, h + h % 2, w + w % 2) for f in frames]
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
