"""Saved records and the report of one runner loop, from every rank (the hooks' sink).

Every rank saves its records into the loop's results directory (:class:`~mmattnvis.sinks.ranked.
RankRecords`); :meth:`LoopResults.finish` waits for all ranks (MMEngine's ``dist.barrier``), then
the main rank merges every rank's records into one index, builds one report and returns the
dataset-level numbers of the merged records.
"""
import os.path as osp
from typing import Any, Callable, Dict, Optional, Sequence

from mmengine.dist import barrier, get_rank, is_main_process

from ..sinks.ranked import RankRecords, clear_parts, merge_parts
from ..sinks.records import load_results
from ..structures import ResultRecord


class LoopResults:
    """Records of one loop (``<results_dir>/<mode>``) and its report (``<report_dir>/<mode>``).

    Construct it on every rank (it synchronises them once when ``resume`` is off, so that the
    main rank's clean-up precedes every rank's writing).

    Args:
        task: The records' task.
        results_dir: Where the records go; ``None`` with a ``report_dir``: ``fallback_dir``.
        report_dir: Where the report is built (``None``: none).
        fallback_dir: The records' directory when only a report is asked for.
        info: JSON-able description stored in the index.
        resume: Keep the records earlier runs saved here; :meth:`has` says which.
    """

    def __init__(self, task: str, results_dir: Optional[str], report_dir: Optional[str],
                 fallback_dir: str, info: Optional[Dict[str, Any]] = None,
                 resume: bool = False) -> None:
        self.task = task
        self.results_dir = results_dir if results_dir is not None else fallback_dir
        self.report_dir = report_dir
        self.info = dict(info or {})
        if not resume:
            if is_main_process():
                clear_parts(self.results_dir)
            barrier()
        self.records = RankRecords(self.results_dir, get_rank(), resume)

    def has(self, stem: str) -> bool:
        return self.records.has(stem)

    def add(self, record: ResultRecord, stem: str, order: Optional[Sequence] = None) -> None:
        self.records.write(record, stem, order)

    def merged(self):
        """``(index, records)`` of every rank, after :meth:`finish` (main rank)."""
        return load_results(self.results_dir)

    def finish(self, summarize: Optional[Callable[[Sequence[ResultRecord]], Dict[str, float]]]
               = None) -> Dict[str, Any]:
        """Barrier; on the main rank: merge, report, summary. Call it on every rank.

        Returns:
            ``{'index': path | None, 'report': path | None, 'summary': {name: value}}`` (empty
            values on the other ranks).
        """
        barrier()
        out: Dict[str, Any] = {'index': None, 'report': None, 'summary': {}}
        if not is_main_process():
            return out
        out['index'] = merge_parts(self.results_dir, self.task, self.info)
        if out['index'] is None:
            return out
        if summarize is not None:
            _, records = load_results(self.results_dir)
            out['summary'] = dict(summarize(records))
            if out['summary']:
                self.info['summary'] = out['summary']
                merge_parts(self.results_dir, self.task, self.info)
        if self.report_dir is not None:
            from ..report import build_report
            out['report'] = build_report(self.results_dir, self.report_dir)
        return out


def loop_dirs(work_dir: str, mode: str, results_dir: Optional[str], report_dir: Optional[str],
              name: str):
    """``(results, report, fallback)`` directories of a loop: relative paths lie under
    ``work_dir``, each gets the ``mode`` sub-folder; ``fallback`` keeps the records of a
    report-only run (``work_dir/.mmattnvis_records/<name>/<mode>``)."""
    def under(d):
        return None if d is None else osp.join(d if osp.isabs(d) else osp.join(work_dir, d),
                                               mode)
    return (under(results_dir), under(report_dir),
            osp.join(work_dir, '.mmattnvis_records', name, mode))


__all__ = ['LoopResults', 'loop_dirs']
