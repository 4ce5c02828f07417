"""Model-zoo sweep: does every shipped MMDet / MMYOLO detection config work with mmattnvis?

Thin wrapper around ``mmattnvis/cli/zoo_check.py``. Installed (no clone):
``mim run mmattnvis zoo_check ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.zoo_check import *  # noqa: F401,F403
from mmattnvis.cli.zoo_check import main

if __name__ == '__main__':
    sys.exit(main())
