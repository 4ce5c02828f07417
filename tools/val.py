"""The familiar OpenMMLab validation entry (``runner.val()``), with mmattnvis hooks.

Thin wrapper around ``mmattnvis/cli/val.py``. Installed (no clone):
``mim run mmattnvis val ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.val import *  # noqa: F401,F403
from mmattnvis.cli.val import main

if __name__ == '__main__':
    sys.exit(main())
