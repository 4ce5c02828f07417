"""Records written by every rank of a distributed run into one results directory, merged once.

Layout (besides :mod:`.records`' ``index.json`` and ``records/``)::

    RESULTS_DIR/parts/rank<r>.jsonl   one line per record a rank saved: {"stem", "order"}
                                      (or {"skipped", "reason"} for a sample it skipped)

A rank saves each record (atomically) and then appends its line, so a killed run leaves only
complete records listed. :func:`merge_parts` (the main rank, after a barrier) reads every
rank's part, keeps the listed records whose files exist, orders them (``order``: the dataset
index, so the index equals a single-process run's) and writes ``index.json``. Restarted with
``resume``, a rank reads the parts first and skips the stems they list (:meth:`RankRecords.has`).
"""
import json
import os
import os.path as osp
import shutil
from typing import Any, Dict, List, Optional, Sequence

from ..structures.record import RECORD_VERSION, ResultRecord, jsonable
from ..utils.fileio import write_text_atomic
from .records import INDEX, save_record

PARTS = 'parts'


def _part_lines(results_dir: str) -> List[Dict[str, Any]]:
    """Every complete line of every rank's part file, in rank order then line order."""
    root = osp.join(results_dir, PARTS)
    if not osp.isdir(root):
        return []
    out = []
    for name in sorted(os.listdir(root)):
        if not name.endswith('.jsonl'):
            continue
        with open(osp.join(root, name), encoding='utf-8') as f:
            for line in f:
                if not line.endswith('\n'):
                    break  # a line cut by a kill: the record after it was never listed
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def _end_cut_line(path: str) -> None:
    """End a line a killed run left unfinished, so that the next line starts afresh."""
    try:
        with open(path, 'rb') as f:
            f.seek(-1, os.SEEK_END)
            cut = f.read(1) != b'\n'
    except OSError:  # missing or empty
        return
    if cut:
        with open(path, 'a', encoding='utf-8') as f:
            f.write('\n')


def _complete(results_dir: str, stem: str) -> bool:
    base = osp.join(results_dir, 'records', stem)
    return osp.isfile(base + '.json') and osp.isfile(base + '.npz')


class RankRecords:
    """One rank's writer into a shared results directory.

    Args:
        results_dir: The loop's results directory (shared by the ranks).
        rank: This process' rank.
        resume: Keep what earlier runs listed (:meth:`has` answers from it); otherwise the
            caller clears the parts first (:func:`clear_parts`, main rank, then a barrier).
    """

    def __init__(self, results_dir: str, rank: int = 0, resume: bool = False) -> None:
        self.results_dir = results_dir
        self.rank = rank
        os.makedirs(osp.join(results_dir, 'records'), exist_ok=True)
        os.makedirs(osp.join(results_dir, PARTS), exist_ok=True)
        self.part = osp.join(results_dir, PARTS, f'rank{rank}.jsonl')
        _end_cut_line(self.part)
        self.done = {line['stem'] for line in _part_lines(results_dir)
                     if 'stem' in line} if resume else set()
        self.written = 0

    def has(self, stem: str) -> bool:
        """A record of ``stem`` was saved by an earlier run (any rank) and is complete."""
        return stem in self.done and _complete(self.results_dir, stem)

    def _append(self, entry: Dict[str, Any]) -> None:
        with open(self.part, 'a', encoding='utf-8') as f:
            f.write(json.dumps(jsonable(entry)) + '\n')
            f.flush()

    def write(self, record: ResultRecord, stem: str, order: Optional[Sequence] = None) -> None:
        """Save ``record`` as ``records/<stem>``, then list it in this rank's part."""
        save_record(osp.join(self.results_dir, 'records', stem), record)
        self._append({'stem': stem, 'order': list(order) if order is not None else None})
        self.done.add(stem)
        self.written += 1

    def skip(self, path: str, reason: str) -> None:
        self._append({'skipped': path, 'reason': reason})


def clear_parts(results_dir: str) -> None:
    """Forget what earlier runs listed (a run without resume); the record files stay until
    overwritten, but only listed records reach the index."""
    shutil.rmtree(osp.join(results_dir, PARTS), ignore_errors=True)
    try:
        os.remove(osp.join(results_dir, INDEX))
    except FileNotFoundError:
        pass


def merged_stems(results_dir: str) -> List[str]:
    """The stems every rank listed (each once, complete ones only), in dataset order."""
    seen: Dict[str, Any] = {}
    for line in _part_lines(results_dir):
        stem = line.get('stem')
        if stem is not None and stem not in seen and _complete(results_dir, stem):
            seen[stem] = line.get('order')
    arrival = {s: i for i, s in enumerate(seen)}

    def key(stem: str):
        order = seen[stem]
        return (order is None, list(order or []), arrival[stem])

    return sorted(seen, key=key)


def merge_parts(results_dir: str, task: str, info: Optional[Dict[str, Any]] = None
                ) -> Optional[str]:
    """Write ``index.json`` over every rank's records; returns its path (``None``: no
    records)."""
    stems = merged_stems(results_dir)
    if not stems:
        return None
    skipped, seen = [], set()
    for line in _part_lines(results_dir):
        if 'skipped' in line and line['skipped'] not in seen:
            seen.add(line['skipped'])
            skipped.append({'path': line['skipped'], 'reason': line.get('reason', '')})
    doc = {'version': RECORD_VERSION, 'task': task, 'records': stems, 'skipped': skipped,
           'info': jsonable(dict(info or {}))}
    return write_text_atomic(osp.join(results_dir, INDEX), json.dumps(doc, indent=1))


__all__ = ['RankRecords', 'clear_parts', 'merge_parts', 'merged_stems']
