"""Generate a synthetic-shapes detection dataset in COCO format.

Thin wrapper around ``mmattnvis/cli/make_shapes.py``. Installed (no clone):
``mim run mmattnvis make_shapes ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.make_shapes import *  # noqa: F401,F403
from mmattnvis.cli.make_shapes import main

if __name__ == '__main__':
    sys.exit(main())
