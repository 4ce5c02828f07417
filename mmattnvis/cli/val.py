"""The familiar OpenMMLab validation entry (``runner.val()``), with mmattnvis hooks.

    python tools/val.py CONFIG CHECKPOINT [--work-dir DIR] [--out-dir DIR]
                        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Same options as ``tools/test.py``; runs the config's ``val_dataloader`` / ``val_evaluator``.
"""
import sys

from mmattnvis.utils.cli import cli_main


@cli_main
def main(argv=None) -> int:
    from mmattnvis.apis.evaluate import evaluate, parse_eval_args
    evaluate(parse_eval_args('val', argv), 'val')
    return 0


if __name__ == '__main__':
    sys.exit(main())
