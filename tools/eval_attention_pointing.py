"""Cross-attention pointing game: does a DETR query's last-layer attention peak in its box?

Thin wrapper around ``mmattnvis/cli/eval_attention_pointing.py``. Installed (no clone):
``mim run mmattnvis eval_attention_pointing ...`` (or see ``mmattnvis --help``).
"""
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_ROOT, 'mmattnvis', '__init__.py')):  # a source checkout: use its code
    sys.path.insert(0, _ROOT)

from mmattnvis.cli.eval_attention_pointing import *  # noqa: E402,F401,F403
from mmattnvis.cli.eval_attention_pointing import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
