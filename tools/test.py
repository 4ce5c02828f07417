"""The familiar OpenMMLab test entry, with mmattnvis hooks available in ``custom_hooks``.

Thin wrapper around ``mmattnvis/cli/test.py``. Installed (no clone):
``mim run mmattnvis test ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.test import *  # noqa: F401,F403
from mmattnvis.cli.test import main

if __name__ == '__main__':
    sys.exit(main())
