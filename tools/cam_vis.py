"""Grad-CAM family maps per detection for MMDet and MMYOLO detectors (``grad-cam`` methods).

Thin wrapper around ``mmattnvis/cli/cam_vis.py``. Installed (no clone):
``mim run mmattnvis cam_vis ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_ROOT, 'mmattnvis', '__init__.py')):  # a source checkout: use its code
    sys.path.insert(0, _ROOT)

from mmattnvis.cli.cam_vis import *  # noqa: E402,F401,F403
from mmattnvis.cli.cam_vis import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
