"""HTML report of a results directory (``--save-results``): gallery, maps, DETR attention.

Thin wrapper around ``mmattnvis/cli/report.py``. Installed (no clone):
``mim run mmattnvis report ...``, or ``mmattnvis report RESULTS_DIR [-o OUT_DIR]``.
"""
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_ROOT, 'mmattnvis', '__init__.py')):  # a source checkout: use its code
    sys.path.insert(0, _ROOT)

from mmattnvis.cli.report import *  # noqa: E402,F401,F403
from mmattnvis.cli.report import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
