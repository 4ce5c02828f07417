"""The machine-readable sink: result records saved as JSON + compressed arrays.

Layout of a results directory::

    RESULTS_DIR/index.json          {"version", "task", "records": [stem, ...], "info": {...}}
    RESULTS_DIR/records/<stem>.json
    RESULTS_DIR/records/<stem>.npz

Every file is written atomically; ``index.json`` last, so a directory with an index is complete.
"""
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

from ..structures.record import RECORD_VERSION, IncompatibleResults, ResultRecord, jsonable
from ..utils.errors import UserInputError
from ..utils.fileio import write_bytes_atomic, write_text_atomic

INDEX = 'index.json'
# the temporary results folder of ``--report`` without ``--save-results`` (report titles skip it)
TEMP_PREFIX = '.mmattnvis-results-'


def save_record(path_stem: str, record: ResultRecord) -> Tuple[str, str]:
    """Write ``<path_stem>.json`` and ``<path_stem>.npz``; returns both paths."""
    text, npz = record.to_files()
    npz_path = write_bytes_atomic(path_stem + '.npz', npz)
    return write_text_atomic(path_stem + '.json', text), npz_path


def load_record(json_path: str) -> ResultRecord:
    """Read a record written by :func:`save_record`."""
    with open(json_path, encoding='utf-8') as f:
        text = f.read()
    npz_path = osp.splitext(json_path)[0] + '.npz'
    npz = None
    if osp.exists(npz_path):
        with open(npz_path, 'rb') as f:
            npz = f.read()
    return ResultRecord.from_files(text, npz)


class RecordSink:
    """Saves each record of a run under ``results_dir`` and the index at :meth:`close`.

    Args:
        results_dir: Output directory (created).
        task: The run's task (one of :data:`~mmattnvis.structures.record.TASKS`).
        info: JSON-able description of the run (tool, config, options), stored in the index.
    """

    def __init__(self, results_dir: str, task: str, info: Optional[Dict[str, Any]] = None):
        self.results_dir = results_dir
        self.task = task
        self.info = dict(info or {})
        self.stems: List[str] = []
        self.skipped: List[Dict[str, str]] = []
        os.makedirs(osp.join(results_dir, 'records'), exist_ok=True)

    def write(self, record: ResultRecord, stem: str) -> None:
        """Save ``record`` as ``records/<stem>`` (a repeated stem gets a numeric suffix)."""
        base, k = stem, 1
        while stem in self.stems:
            stem = f'{base}_{k}'
            k += 1
        save_record(osp.join(self.results_dir, 'records', stem), record)
        self.stems.append(stem)

    def skip(self, path: str, reason: str) -> None:
        """Note an image the run skipped (listed in the index and the report)."""
        self.skipped.append({'path': path, 'reason': reason})

    def close(self) -> str:
        """Write ``index.json``; returns its path."""
        doc = {'version': RECORD_VERSION, 'task': self.task, 'records': self.stems,
               'skipped': self.skipped, 'info': jsonable(self.info)}
        return write_text_atomic(osp.join(self.results_dir, INDEX), json.dumps(doc, indent=1))


def read_index(results_dir: str) -> Dict[str, Any]:
    """The index of a results directory; one-line :class:`UserInputError` when it is missing,
    empty or from an incompatible version."""
    if not osp.isdir(results_dir):
        raise UserInputError(f'results directory {results_dir!r} does not exist; pass the '
                             'directory a tool wrote with --save-results')
    path = osp.join(results_dir, INDEX)
    if not osp.isfile(path):
        raise UserInputError(f'{results_dir!r} holds no {INDEX}: not a results directory (or the '
                             'run did not finish); re-run the tool with --save-results')
    try:
        with open(path, encoding='utf-8') as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise UserInputError(f'cannot read {path!r}: {e}') from None
    if not isinstance(doc, dict) or doc.get('version') != RECORD_VERSION:
        got = doc.get('version') if isinstance(doc, dict) else None
        raise UserInputError(f'{path!r} has results version {got!r}; this mmattnvis reads '
                             f'version {RECORD_VERSION}: re-run the tool with this version')
    if not doc.get('records'):
        raise UserInputError(f'{results_dir!r} holds no records (the run produced nothing)')
    return doc


def load_results(results_dir: str) -> Tuple[Dict[str, Any], List[ResultRecord]]:
    """``(index, records)`` of a results directory, records in index order."""
    doc = read_index(results_dir)
    records = []
    for stem in doc['records']:
        p = osp.join(results_dir, 'records', stem + '.json')
        try:
            records.append(load_record(p))
        except (OSError, IncompatibleResults) as e:
            raise UserInputError(f'cannot read record {p!r}: {e}') from None
    return doc, records
