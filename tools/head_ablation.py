"""What happens to detections when attention heads are turned off.

Thin wrapper around ``mmattnvis/cli/head_ablation.py``. Installed (no clone):
``mim run mmattnvis head_ablation ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.head_ablation import *  # noqa: F401,F403
from mmattnvis.cli.head_ablation import main

if __name__ == '__main__':
    sys.exit(main())
