"""Grad-CAM family maps per detection for MMDet and MMYOLO detectors (``grad-cam`` methods).

Thin wrapper around ``mmattnvis/cli/cam_vis.py``. Installed (no clone):
``mim run mmattnvis cam_vis ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.cam_vis import *  # noqa: F401,F403
from mmattnvis.cli.cam_vis import main

if __name__ == '__main__':
    sys.exit(main())
