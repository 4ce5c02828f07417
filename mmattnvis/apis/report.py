"""The HTML report of a saved run (``mmattnvis report``, the hooks' ``report_dir``)."""
import os.path as osp
from typing import Any, Callable, Optional

from ..report import build_report

#: ``progress(done, total)`` after each image of the report.
Progress = Callable[[int, int], None]


def report_results(results_dir: str, out_dir: Optional[str] = None,
                   progress: Optional[Progress] = None, **options: Any) -> str:
    """Build the report of a results directory written with ``--save-results`` (or a hook's
    ``results_dir``); returns the path of its ``index.html``.

    Args:
        results_dir: The saved run.
        out_dir: The report folder (default: ``RESULTS_DIR/report``).
        progress: Called as ``progress(done, total)`` after each image.
        **options: ``title``, ``alpha``, ``colormap``, ``thumb_size``, ``max_side``,
            ``jpeg_quality`` (see :func:`mmattnvis.report.build_report`).
    """
    out_dir = out_dir or osp.join(results_dir, 'report')
    return build_report(results_dir, out_dir, progress=progress, **options)


__all__ = ['build_report', 'report_results']
