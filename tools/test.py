"""The familiar OpenMMLab test entry, with mmattnvis hooks available in ``custom_hooks``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out-dir DIR]
                         [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Checkpoints load through mmattnvis' safe loader (weights-only unless ``--unsafe-load``).
``--out-dir`` sets ``out_dir`` of every ``mmattnvis.*`` hook in ``custom_hooks``.
Images of the test set that cannot be read are left out and named in a ``warning:`` line at the
end (exit code 0); when none can be read, that is an error (exit code 2).
"""
import argparse
import os
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main  # noqa: E402
from mmattnvis.utils.validate import CfgOptionsAction, validate_cli_args  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description='Test (and visualise) a detector')
    parser.add_argument('config', help='config file (or mmdet::/mmyolo:: path)')
    parser.add_argument('checkpoint', help='checkpoint file ("none": weights as built)')
    parser.add_argument('--work-dir', help='where logs and visualisations go')
    parser.add_argument('--out-dir', help='out_dir for the mmattnvis hooks in custom_hooks')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
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
    args = validate_cli_args(parse_args(argv))
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from mmattnvis.apis.inference import skipped_summary
    from mmattnvis.apis.model import checkpoint_arg, runner_config
    from mmattnvis.datasets import skip_unreadable_images, skipped_images
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
    skip_unreadable_images(cfg, 'test_dataloader', source=args.config)
    runner = Runner.from_cfg(cfg)
    if checkpoint is not None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        load_checkpoint_safely(model, checkpoint, unsafe=args.unsafe_load,
                               logger=runner.logger)
    skipped, total = skipped_images(runner.test_loop.dataloader)  # builds the loop
    if skipped and len(skipped) == total:
        raise UserInputError(f'none of the {total} test images can be read (e.g. '
                             f'{skipped[0][0]}: {skipped[0][1]})')
    metrics = runner.test()
    runner.logger.info(f'metrics: {metrics}')
    if skipped and is_main_process():
        sys.stdout.flush()
        print(skipped_summary(skipped, total), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
