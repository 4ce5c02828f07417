"""The familiar OpenMMLab validation entry (``runner.val()``), with mmattnvis hooks.

Thin wrapper around ``mmattnvis/cli/val.py``. Installed (no clone):
``mim run mmattnvis val ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_ROOT, 'mmattnvis', '__init__.py')):  # a source checkout: use its code
    sys.path.insert(0, _ROOT)

from mmattnvis.cli.val import *  # noqa: E402,F401,F403
from mmattnvis.cli.val import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
