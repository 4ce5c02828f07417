"""Feature maps of any layer, aligned with the original image, with predictions.

Flag-compatible with MMYOLO's ``demo/featmap_vis_demo.py``::

    python tools/featmap_vis.py IMG CONFIG CHECKPOINT --target-layers neck \
        --channel-reduction squeeze_mean --out-dir outputs/featmaps
"""
import argparse
import os.path as osp
import sys
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from mmattnvis.utils.cli import (  # noqa: E402
    DEVICE_HELP,
    OneLineArgumentParser,
    add_figure_args,
    add_input_args,
    cli_main,
    order_inputs,
)
from mmattnvis.utils.validate import CfgOptionsAction, validate_cli_args  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description='Visualize feature maps of a detector')
    add_input_args(parser)
    parser.add_argument('--out-dir', default='./output', help='where images are written')
    parser.add_argument('--target-layers', default=['backbone'], nargs='+', type=str,
                        help='module names, e.g. backbone neck backbone.stage4 '
                        'neck.out_layers[2]')
    parser.add_argument('--preview-model', action='store_true',
                        help='print module names with output shapes and exit')
    parser.add_argument('--preview-depth', type=int, default=3,
                        help='deepest module level listed by --preview-model')
    parser.add_argument('--device', default='auto', help=DEVICE_HELP)
    parser.add_argument('--score-thr', type=float, default=0.3, help='bbox score threshold')
    parser.add_argument('--show', action='store_true', help='show each result in a window')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value')
    parser.add_argument('--channel-reduction', default='select_max',
                        choices=['squeeze_mean', 'select_max', 'pixel_wise_max', 'None'],
                        help='how channels are reduced to one map')
    parser.add_argument('--topk', type=int, default=4,
                        help='top-k channels shown when --channel-reduction None')
    parser.add_argument('--arrangement', nargs='+', type=int, default=[2, 2],
                        help='rows cols of the top-k grid')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--max-size', type=int, default=2000,
                        help='longest side of a written image in pixels (the image is scaled '
                        'before drawing, so boxes and labels keep their size)')
    parser.add_argument('--no-align', action='store_true',
                        help='stretch maps over the image (MMYOLO behaviour) instead of '
                        'undoing letterbox/padding')
    add_figure_args(parser, cell_width=False)
    parser.add_argument('--unsafe-load', action='store_true',
                        help='allow full unpickling of the checkpoint (trusted files only)')
    return order_inputs(parser.parse_args(argv))


@cli_main
def main(argv=None) -> int:
    args = validate_cli_args(parse_args(argv))
    from mmattnvis.apis.featmap_runner import FeatMapRun
    run = FeatMapRun.from_args(args)
    if args.preview_model:
        print('\n'.join(run.preview(max_depth=args.preview_depth)))
        return 0
    from mmattnvis.apis.run_sinks import RunSinks
    sinks = RunSinks('featmap', args.save_results, args.report,
                     {'tool': 'featmap_vis', 'config': args.config,
                      'target_layers': list(args.target_layers),
                      'channel_reduction': args.channel_reduction})
    # the skipped images (if any) are named in a warning line after the last one
    run.run_all(sinks=sinks, message=lambda n: f'{n} image(s) written to '
                f'{osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
