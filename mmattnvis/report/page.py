"""The report folder: its atomic replacement, the shipped scripts and the ``index.html`` page."""
import json
import os
import os.path as osp
import secrets
import shutil
from contextlib import contextmanager
from typing import Any, Dict, Iterator

import jinja2

from ..utils.errors import UserInputError

MARKER = '.mmattnvis-report'  # a folder with this file may be replaced by a new report
PKG_DIR = osp.dirname(osp.abspath(__file__))
STATIC_FILES = ('report.js', 'report.css')


@contextmanager
def atomic_directory(out_dir: str) -> Iterator[str]:
    """Yield a fresh temporary folder next to ``out_dir``; rename it to ``out_dir`` on success.

    An existing ``out_dir`` must be empty or a previous report (it holds :data:`MARKER`); it is
    moved aside, replaced, then removed. On failure the temporary folder is removed and
    ``out_dir`` is left as it was.
    """
    out_dir = osp.abspath(out_dir)
    parent = osp.dirname(out_dir)
    if osp.lexists(out_dir):
        if osp.islink(out_dir) or not osp.isdir(out_dir):
            raise UserInputError(f'cannot write the report to {out_dir}: it exists and is not a '
                                 'folder')
        if os.listdir(out_dir) and not osp.isfile(osp.join(out_dir, MARKER)):
            raise UserInputError(f'{out_dir} exists and is not an mmattnvis report; choose '
                                 'another output folder (-o) or empty it')
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = osp.join(parent, f'.{osp.basename(out_dir)}.tmp-{secrets.token_hex(6)}')
        os.mkdir(tmp)
    except OSError as e:
        raise UserInputError(f'cannot create the report folder next to {out_dir}: '
                             f'{e.strerror or e}') from None
    try:
        yield tmp
        with open(osp.join(tmp, MARKER), 'w', encoding='utf-8') as f:
            f.write('written by mmattnvis.report.build_report; replaced by the next report\n')
        old = None
        if osp.lexists(out_dir):
            old = osp.join(parent, f'.{osp.basename(out_dir)}.old-{secrets.token_hex(6)}')
            os.rename(out_dir, old)
        try:
            os.rename(tmp, out_dir)
        except BaseException:
            if old is not None:
                os.rename(old, out_dir)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise UserInputError(f'cannot write the report {out_dir}: {err.strerror or err}'
                                 ) from None
        raise


def write_page(out: str, title: str, index: Dict[str, Any], info: Dict[str, Any]) -> None:
    """Render ``index.html`` (jinja2 template) with the run summary into ``out``.

    Args:
        out: The report folder.
        title: Page title.
        index: The gallery index (as written to ``data/index.js``).
        info: The run's ``info`` (shown in the summary, long values shortened).
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(osp.join(PKG_DIR, 'templates')),
        autoescape=jinja2.select_autoescape(['html']), undefined=jinja2.StrictUndefined)
    from ..version import __version__
    n_maps = sum(e['maps'] for e in index['images'])
    n_dets = sum(len(e['dets']) for e in index['images'])
    summary = [('task', index['task']), ('images', len(index['images'])),
               ('detections', n_dets), ('maps', n_maps)]
    summary += [(str(k), _short(v)) for k, v in info.items()]
    html = env.get_template('index.html').render(
        title=title, summary=summary, skipped=index['skipped'], notes=index['notes'],
        has_faithfulness=bool(index['faithfulness']), has_ablation=bool(index['ablation']),
        version=__version__)
    with open(osp.join(out, 'index.html'), 'w', encoding='utf-8') as f:
        f.write(html)


def _short(v: Any, limit: int = 300) -> str:
    """``v`` as text (JSON unless a string), cut to ``limit`` characters."""
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= limit else text[:limit] + '…'
