"""HTML report of a results directory (``--save-results``): gallery, maps, DETR attention.

Thin wrapper around ``mmattnvis/cli/report.py``. Installed (no clone):
``mim run mmattnvis report ...``, or ``mmattnvis report RESULTS_DIR [-o OUT_DIR]``.
"""
import sys

from mmattnvis.cli.report import *  # noqa: F401,F403
from mmattnvis.cli.report import main

if __name__ == '__main__':
    sys.exit(main())
