"""Generate a synthetic-shapes detection dataset in COCO format.

Thin wrapper around ``mmattnvis/cli/make_shapes.py``. Installed (no clone):
``mim run mmattnvis make_shapes ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_ROOT, 'mmattnvis', '__init__.py')):  # a source checkout: use its code
    sys.path.insert(0, _ROOT)

from mmattnvis.cli.make_shapes import *  # noqa: E402,F401,F403
from mmattnvis.cli.make_shapes import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
