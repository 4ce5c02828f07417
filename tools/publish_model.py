"""Turn a training checkpoint into a small weights-only file for shipping.

Thin wrapper around ``mmattnvis/cli/publish_model.py``. Installed (no clone):
``mim run mmattnvis publish_model ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.publish_model import *  # noqa: F401,F403
from mmattnvis.cli.publish_model import main

if __name__ == '__main__':
    sys.exit(main())
