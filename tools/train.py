"""The familiar OpenMMLab training entry over MMEngine's Runner.

Thin wrapper around ``mmattnvis/cli/train.py``. Installed (no clone):
``mim run mmattnvis train ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.train import *  # noqa: F401,F403
from mmattnvis.cli.train import main

if __name__ == '__main__':
    sys.exit(main())
