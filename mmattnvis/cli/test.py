"""The familiar OpenMMLab test entry, with mmattnvis hooks available in ``custom_hooks``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out-dir DIR]
                         [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Checkpoints load through mmattnvis' safe loader (weights-only unless ``--unsafe-load``).
``--out-dir`` sets ``out_dir`` of every ``mmattnvis.*`` hook in ``custom_hooks``.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.config import DictAction  # noqa: E402

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description='Test (and visualise) a detector')
    parser.add_argument('config', help='config file (or mmdet::/mmyolo:: path)')
    parser.add_argument('checkpoint', help='checkpoint file ("none": weights as built)')
    parser.add_argument('--work-dir', help='where logs and visualisations go')
    parser.add_argument('--out-dir', help='out_dir for the mmattnvis hooks in custom_hooks')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='allow full unpickling of the checkpoint (trusted files only)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.runner import Runner

    from mmattnvis.apis.model import checkpoint_arg, runner_config
    from mmattnvis.utils.checkpoint import load_checkpoint_safely
    from mmattnvis.utils.errors import UserInputError

    checkpoint = checkpoint_arg(args.checkpoint)
    cfg = runner_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = None  # loaded below through the safe loader
    if args.out_dir is not None:
        for hook in cfg.get('custom_hooks', []) or []:
            if str(hook.get('type', '')).startswith('mmattnvis.'):
                hook['out_dir'] = osp.abspath(args.out_dir)
    if 'test_dataloader' not in cfg or cfg.test_dataloader is None:
        raise UserInputError(f'config {args.config} has no test_dataloader')
    runner = Runner.from_cfg(cfg)
    if checkpoint is not None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        load_checkpoint_safely(model, checkpoint, unsafe=args.unsafe_load,
                               logger=runner.logger)
    metrics = runner.test()
    runner.logger.info(f'metrics: {metrics}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
