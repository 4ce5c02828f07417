"""The familiar OpenMMLab test entry, with mmattnvis hooks available in ``custom_hooks``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out-dir DIR]
                         [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Checkpoints load through mmattnvis' safe loader (weights-only unless ``--unsafe-load``).
``--out-dir`` sets ``out_dir`` of every ``mmattnvis.*`` hook in ``custom_hooks``; a relative path
lies under the work dir, as a relative ``out_dir`` in the config does.
"""
import sys

from mmattnvis.utils.cli import cli_main


@cli_main
def main(argv=None) -> int:
    from mmattnvis.apis.evaluate import evaluate, parse_eval_args
    evaluate(parse_eval_args('test', argv), 'test')
    return 0


if __name__ == '__main__':
    sys.exit(main())
