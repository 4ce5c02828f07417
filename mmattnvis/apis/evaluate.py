"""``tools/test.py`` / ``tools/val.py``: ``runner.test()`` or ``runner.val()`` with the project's
safe checkpoint loading and the mmattnvis hooks' ``--out-dir``.

Images of the dataset that cannot be read are left out and named in a ``warning:`` line at the end
(exit code 0); when none can be read, that is an error (exit code 2). Images whose decoded size
differs from their annotation are evaluated and named in a ``warning:`` line. The config is
checked before MMEngine builds the runner (:mod:`.runner_checks`), and the training-only
``CheckpointHook`` is left out."""
import argparse
import os
from typing import Dict, Optional, Sequence

from ..utils.cli import OneLineArgumentParser
from ..utils.errors import UserInputError


def parse_eval_args(mode: str, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Arguments of ``tools/test.py`` (``mode='test'``) and ``tools/val.py`` (``'val'``)."""
    from ..utils.validate import CfgOptionsAction
    parser = OneLineArgumentParser(
        description=f'{"Test" if mode == "test" else "Validate"} (and visualise) a detector: '
        f'runner.{mode}() with the mmattnvis hooks of custom_hooks')
    parser.add_argument('config', help='config file (or mmdet::/mmyolo:: path)')
    parser.add_argument('checkpoint', help='checkpoint file ("none": weights as built)')
    parser.add_argument('--work-dir', help='where logs and visualisations go')
    parser.add_argument('--out-dir', help='out_dir of every mmattnvis hook in custom_hooks; '
                        'a relative path lies under the work dir (as MMDet\'s --show-dir)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='allow full unpickling of the checkpoint (trusted files only)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--errors', action='store_true',
                        help="label every detection and missed object with TIDE's error kinds "
                        'and map each error (mmattnvis.ErrorHook; records under '
                        '<work_dir>/errors/, report under <work_dir>/errors_report/)')
    parser.add_argument('--errors-method', default='drise',
                        help="map of each error: drise, occlusion, odam, a Grad-CAM name, or "
                        "'none'")
    parser.add_argument('--errors-masks', type=int, default=300,
                        help='D-RISE masks per error map')
    parser.add_argument('--errors-score-thr', type=float, default=0.3,
                        help='detections above this score are labelled')
    from ..utils.validate import validate_cli_args
    args = validate_cli_args(parser.parse_args(argv))
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def evaluate(args: argparse.Namespace, mode: str = 'test') -> Dict[str, float]:
    """Build the runner, load the checkpoint safely, run ``runner.test()`` / ``runner.val()``."""
    import sys

    from mmengine.dist import is_main_process

    from ..datasets import skip_unreadable_images, skipped_images
    from ..datasets.skip_unreadable import mismatched_images
    from ..utils.checkpoint import load_checkpoint_safely
    from .inference import skipped_summary
    from .model import checkpoint_arg, runner_config
    from .runner_checks import build_runner, check_runner_config, drop_training_hooks

    checkpoint = checkpoint_arg(args.checkpoint)
    cfg = runner_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = None  # loaded below through the safe loader
    loader = f'{mode}_dataloader'
    check_runner_config(cfg, args.config, [loader])
    if args.out_dir is not None:
        for hook in cfg.get('custom_hooks', []) or []:
            if str(hook.get('type', '')).startswith('mmattnvis.'):
                hook['out_dir'] = args.out_dir
    if args.errors:
        method = None if str(args.errors_method).lower() == 'none' else args.errors_method
        hooks = list(cfg.get('custom_hooks', []) or [])
        hooks.append(dict(type='mmattnvis.ErrorHook', results_dir='errors',
                          report_dir='errors_report', method=method,
                          score_thr=args.errors_score_thr, drise_masks=args.errors_masks))
        cfg.custom_hooks = hooks
    if cfg.get(loader, None) is None:
        raise UserInputError(f'config {args.config} has no {loader}')
    if mode == 'val' and cfg.get('val_cfg', None) is None:
        cfg.val_cfg = dict(type='ValLoop')
    drop_training_hooks(cfg)
    skip_unreadable_images(cfg, loader, source=args.config)
    runner = build_runner(cfg, args.config)
    if checkpoint is not None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        load_checkpoint_safely(model, checkpoint, unsafe=args.unsafe_load,
                               logger=runner.logger)
    loop = runner.test_loop if mode == 'test' else runner.val_loop  # builds the loop
    skipped, total = skipped_images(loop.dataloader)
    mismatched = mismatched_images(loop.dataloader)
    if skipped and len(skipped) == total:
        raise UserInputError(f'none of the {total} {mode} images can be read (e.g. '
                             f'{skipped[0][0]}: {skipped[0][1]})')
    metrics = runner.test() if mode == 'test' else runner.val()
    runner.logger.info(f'metrics: {metrics}')
    if (skipped or mismatched) and is_main_process():
        sys.stdout.flush()
        if mismatched:
            print(f'warning: {len(mismatched)} of {total} image(s) do not have the size their '
                  'annotation gives (boxes and metric may not match the pixels): '
                  + '; '.join(f'{p} ({why})' for p, why in mismatched[:10])
                  + (f'; and {len(mismatched) - 10} more' if len(mismatched) > 10 else ''),
                  file=sys.stderr)
        if skipped:
            print(skipped_summary(skipped, total), file=sys.stderr)
    return metrics
