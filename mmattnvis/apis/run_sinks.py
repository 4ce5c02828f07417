"""The sinks a run writes its records to besides its figures: saved results and the report."""
import os
import os.path as osp
import shutil
import tempfile
import weakref
from typing import Any, Dict, Optional, Sequence, Tuple

from ..sinks.records import TEMP_PREFIX, RecordSink
from ..structures import ResultRecord


class RunSinks:
    """Saved results (``--save-results DIR``) and/or the HTML report (``--report DIR``).

    Records are saved as they come; :meth:`close` writes the index and builds the report. With a
    report but no results directory, the records live in a temporary directory next to the
    report, removed when the report is built.

    Args:
        task: The run's task (featmap, attention, cam, ablation, faithfulness).
        results_dir: Where records are saved (``None``: not kept).
        report_dir: Where the report is built (``None``: no report).
        info: JSON-able description of the run, stored in the index.
    """

    def __init__(self, task: str, results_dir: Optional[str] = None,
                 report_dir: Optional[str] = None, info: Optional[Dict[str, Any]] = None):
        self.report_dir = report_dir
        self._tmp: Optional[str] = None
        if results_dir is None and report_dir is not None:
            parent = osp.dirname(osp.abspath(report_dir))
            os.makedirs(parent, exist_ok=True)
            self._tmp = results_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent)
            # removed when the report is built, and also when a failed run drops this object
            self._cleanup = weakref.finalize(self, shutil.rmtree, results_dir, True)
        self.results_dir = results_dir
        self._sink = None if results_dir is None else RecordSink(results_dir, task, info)

    @property
    def active(self) -> bool:
        return self._sink is not None

    def update_info(self, **info: Any) -> None:
        """Add JSON-able entries to the index's ``info`` (e.g. a run's summary table)."""
        if self._sink is not None:
            self._sink.info.update(info)

    def add(self, record: ResultRecord, stem: str) -> None:
        if self._sink is not None:
            self._sink.write(record, stem)

    def skipped(self, unreadable: Any) -> None:
        """Note the images a run skipped (``UnreadableImages`` or ``[(path, reason)]``)."""
        items: Sequence[Tuple[str, str]] = getattr(unreadable, 'skipped', unreadable)
        if self._sink is not None:
            for path, why in items:
                self._sink.skip(path, why)

    def close(self) -> Optional[str]:
        """Write the index and build the report; returns the report's ``index.html`` or ``None``."""
        if self._sink is None:
            return None
        try:
            if not self._sink.stems:
                return None
            self._sink.close()
            if self.report_dir is None or self.results_dir is None:
                return None
            from ..report import build_report
            return build_report(self.results_dir, self.report_dir)
        finally:
            if self._tmp is not None:
                self._cleanup()
                self._tmp = None
