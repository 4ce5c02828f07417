"""The familiar OpenMMLab training entry over MMEngine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--cfg-options k=v ...] [--resume]

Checkpoints (``--resume``, ``load_from``) load through mmattnvis' safe reader: weights-only, with
exactly the MMEngine classes its own checkpoints hold allowed (``mmattnvis.compat``), unless
``--unsafe-load``.
"""
import os
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main  # noqa: E402
from mmattnvis.utils.validate import CfgOptionsAction, validate_cli_args  # noqa: E402


@cli_main
def main(argv=None) -> int:
    parser = OneLineArgumentParser(description='Train a detector')
    parser.add_argument('config', help='config file (or mmdet::/mmyolo:: path)')
    parser.add_argument('--work-dir', help='where checkpoints and logs go')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='allow full unpickling of checkpoints (trusted files only)')
    args = validate_cli_args(parser.parse_args(argv))
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = '0'
    from mmattnvis.apis.model import runner_config
    from mmattnvis.apis.runner_checks import build_runner, check_runner_config
    from mmattnvis.utils.checkpoint import safe_runner_checkpoints
    cfg = runner_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.resume = args.resume
    check_runner_config(cfg, args.config, ['train_dataloader', 'val_dataloader'])
    with safe_runner_checkpoints(unsafe=args.unsafe_load):
        runner = build_runner(cfg, args.config)
        runner.train()
    return 0


if __name__ == '__main__':
    sys.exit(main())
