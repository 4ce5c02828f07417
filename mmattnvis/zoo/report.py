"""The sweep's output: ``zoo_matrix.md`` (tables per package / family) and ``zoo_matrix.json``."""
import json
import os
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Tuple

from ..utils.errors import UserInputError
from .discovery import Record

STATUSES = ('pass', 'fail', 'skip')


def summarize(records: Sequence[Record]) -> Dict[str, Any]:
    """Counts per status and the pass rate ``pass / (pass + fail)`` (``None`` if no buildable
    config)."""
    counts = {s: sum(1 for r in records if r['status'] == s) for s in STATUSES}
    buildable = counts['pass'] + counts['fail']
    return dict(counts, total=len(records),
                pass_rate=(counts['pass'] / buildable) if buildable else None)


def _rate(summary: Dict[str, Any]) -> str:
    return '-' if summary['pass_rate'] is None else f"{100 * summary['pass_rate']:.1f} %"


def _cell(text: Any) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def render_markdown(records: Sequence[Record], title_note: str = '') -> str:
    """The ``zoo_matrix.md`` text: a summary table, then one table per package/family."""
    groups: 'OrderedDict[Tuple[str, str], List[Record]]' = OrderedDict()
    for r in sorted(records, key=lambda r: (r['package'], r['family'], r['config'])):
        groups.setdefault((r['package'], r['family']), []).append(r)
    lines = ['# Model-zoo check', '']
    if title_note:
        lines += [title_note, '']
    lines += ['Pass rate = pass / (pass + fail): skipped configs need something this machine '
              'cannot have (an optional package, CUDA, an external file) or are no detector.', '',
              '| | pass | fail | skip | total | pass rate |', '|---|---|---|---|---|---|']
    packages = sorted({r['package'] for r in records})
    for name, subset in [(p, [r for r in records if r['package'] == p]) for p in packages] + \
            [('all', list(records))]:
        s = summarize(subset)
        lines.append(f"| {name} | {s['pass']} | {s['fail']} | {s['skip']} | {s['total']} | "
                     f'{_rate(s)} |')
    total_s = sum(float(r.get('seconds') or 0) for r in records)
    lines += ['', f'Total check time {total_s:.0f} s (summed over configs).', '']
    why: Dict[str, int] = {}
    for r in records:
        if r['status'] == 'skip':
            kind = str(r.get('reason', '')).split(':')[0] or '?'
            why[kind] = why.get(kind, 0) + 1
    if why:
        lines += ['Skipped: ' + ', '.join(f'{k} {n}' for k, n in sorted(why.items())) + '.', '']
    failed = [r for r in records if r['status'] == 'fail']
    if failed:
        lines += ['## Failures', '', '| config | reason |', '|---|---|']
        lines += [f"| {r['package']}/{_cell(r['config'])} | {_cell(r.get('reason', ''))} |"
                  for r in sorted(failed, key=lambda r: (r['package'], r['config']))]
        lines.append('')
    for (package, family), rows in groups.items():
        s = summarize(rows)
        lines += [f'## {package}/{family}', '',
                  f"{s['pass']} pass, {s['fail']} fail, {s['skip']} skip", '',
                  '| config | status | time (s) | reason |', '|---|---|---|---|']
        for r in rows:
            lines.append(f"| {_cell(r['config'])} | {r['status']} | "
                         f"{float(r.get('seconds') or 0):.1f} | {_cell(r.get('reason', ''))} |")
        lines.append('')
    return '\n'.join(lines)


def _write_atomic(path: str, text: str) -> None:
    out_dir = osp.dirname(osp.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=out_dir)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_matrix(records: Sequence[Record], out_dir: str,
                 title_note: str = '') -> Tuple[str, str]:
    """Write ``zoo_matrix.md`` and ``zoo_matrix.json`` (records sorted by package and config).

    Returns:
        The two paths.
    """
    records = sorted(records, key=lambda r: (r['package'], r['config']))
    md_path = osp.join(out_dir, 'zoo_matrix.md')
    json_path = osp.join(out_dir, 'zoo_matrix.json')
    _write_atomic(json_path, json.dumps([dict(r) for r in records], indent=1) + '\n')
    _write_atomic(md_path, render_markdown(records, title_note))
    return md_path, json_path


def read_matrix(out_dir: str) -> List[Record]:
    """Records of an existing ``zoo_matrix.json`` (empty list when there is none).

    Raises:
        UserInputError: The file exists but is not a list of records.
    """
    path = osp.join(out_dir, 'zoo_matrix.json')
    if not osp.isfile(path):
        return []
    try:
        with open(path) as f:
            records = json.load(f)
        assert isinstance(records, list) and all(
            {'package', 'config', 'status'} <= set(r) for r in records)
    except Exception:
        raise UserInputError(f'{path} is not a zoo matrix (list of records); remove it or '
                             'drop --resume') from None
    return records


def versions_note(img_size: int) -> str:
    """A one-line description of the environment the sweep ran in."""
    parts = []
    for name in ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmyolo'):
        try:
            parts.append(f'{name} {__import__(name).__version__}')
        except Exception:
            pass
    return f"{', '.join(parts)}; CPU, random weights, {img_size} px synthetic image."
