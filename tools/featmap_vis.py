"""Feature maps of any layer, aligned with the original image, with predictions.

Thin wrapper around ``mmattnvis/cli/featmap_vis.py``. Installed (no clone):
``mim run mmattnvis featmap_vis ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.featmap_vis import *  # noqa: F401,F403
from mmattnvis.cli.featmap_vis import main

if __name__ == '__main__':
    sys.exit(main())
