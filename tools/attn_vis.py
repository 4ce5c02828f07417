"""DETR-family attention per detected query (decoder, encoder, deformable, relevance).

Thin wrapper around ``mmattnvis/cli/attn_vis.py``. Installed (no clone):
``mim run mmattnvis attn_vis ...``, or ``mmattnvis <command>`` (``mmattnvis --help``).
"""
import sys

from mmattnvis.cli.attn_vis import *  # noqa: F401,F403
from mmattnvis.cli.attn_vis import main

if __name__ == '__main__':
    sys.exit(main())
