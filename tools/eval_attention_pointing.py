"""Cross-attention pointing game: does a DETR query's last-layer attention peak in its box?

Thin wrapper around ``mmattnvis/cli/eval_attention_pointing.py``. Installed (no clone):
``mim run mmattnvis eval_attention_pointing ...`` (or see ``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.eval_attention_pointing import *  # noqa: F401,F403
from mmattnvis.cli.eval_attention_pointing import main

if __name__ == '__main__':
    sys.exit(main())
