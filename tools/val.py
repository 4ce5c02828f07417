"""The familiar OpenMMLab validation entry (``runner.val()``), with mmattnvis hooks.

    python tools/val.py CONFIG CHECKPOINT [--work-dir DIR] [--out-dir DIR]
                        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Same options as ``tools/test.py``; runs the config's ``val_dataloader`` / ``val_evaluator``.
"""
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmattnvis.utils.cli import cli_main  # noqa: E402


@cli_main
def main(argv=None) -> int:
    from mmattnvis.apis.evaluate import evaluate, parse_eval_args
    evaluate(parse_eval_args('val', argv), 'val')
    return 0


if __name__ == '__main__':
    sys.exit(main())
