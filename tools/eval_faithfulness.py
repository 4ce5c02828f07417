"""How faithful are saliency maps of a detector? A table per method, against baseline maps.

Thin wrapper around ``mmattnvis/cli/eval_faithfulness.py``. Installed (no clone):
``mim run mmattnvis eval_faithfulness ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.eval_faithfulness import *  # noqa: F401,F403
from mmattnvis.cli.eval_faithfulness import main

if __name__ == '__main__':
    sys.exit(main())
