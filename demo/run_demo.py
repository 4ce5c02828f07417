"""The README's demo (``make demo``): the shipped shapes models on the images in ``demo/images/``,
written to ``outputs/demo/``. Thin wrapper around ``mmattnvis/cli/demo.py``; installed, the same
demo runs as ``mmattnvis demo --out-dir DIR``.
"""
import os.path as osp
import sys

from mmattnvis.cli.demo import main

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

if __name__ == '__main__':
    sys.exit(main(['--out-dir', osp.join(ROOT, 'outputs', 'demo')] + sys.argv[1:]))
