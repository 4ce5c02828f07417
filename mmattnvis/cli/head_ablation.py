"""What happens to detections when attention heads are turned off.

Detections with all heads on, with the first k heads off in every decoder layer (k = 1..H), and
with each single head off in every decoder layer; a grid of panels and a table (printed and saved
as CSV) of detections kept, lost and gained (IoU >= 0.5, same class) and the score changes.

    python tools/head_ablation.py IMG CONFIG CHECKPOINT [--part decoder_cross]
"""
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import (  # noqa: E402
    DEVICE_HELP,
    OneLineArgumentParser,
    add_figure_args,
    add_input_args,
    cli_main,
    order_inputs,
)
from mmattnvis.utils.validate import CfgOptionsAction, validate_cli_args  # noqa: E402


def parse_args(argv=None):
    parser = OneLineArgumentParser(description='Head ablation study for DETR-family detectors')
    add_input_args(parser)
    parser.add_argument('--part', default='decoder_cross',
                        choices=['decoder_cross', 'decoder_self', 'encoder'],
                        help='which attention to ablate (in every layer)')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--iou-thr', type=float, default=0.5, help='IoU to match detections')
    parser.add_argument('--out-dir', default='./output')
    parser.add_argument('--device', default='auto', help=DEVICE_HELP)
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    add_figure_args(parser, heat=False)
    parser.add_argument('--unsafe-load', action='store_true')
    return order_inputs(parser.parse_args(argv))


@cli_main
def main(argv=None) -> int:
    args = validate_cli_args(parse_args(argv))
    from mmattnvis.apis import collect_images
    from mmattnvis.apis.ablation import AblationOptions, AblationRun
    from mmattnvis.apis.figure_writers import AblationFigureWriter, FigureOptions
    from mmattnvis.apis.image_loop import run_image_loop
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.apis.run_sinks import RunSinks

    figure_opts = FigureOptions.from_args(args)

    images = collect_images(args.img)
    model = init_model_from_args(args)
    run = AblationRun(model, AblationOptions(args.part, args.score_thr, args.iou_thr))
    sinks = RunSinks('ablation', args.save_results, args.report,
                     {'tool': 'head_ablation', 'config': args.config, 'part': args.part})
    root = args.img if osp.isdir(args.img) else osp.dirname(args.img)
    writer = AblationFigureWriter(args.out_dir, root, model.dataset_meta, args.part,
                                  args.score_thr, args.iou_thr, args.cell_width, figure_opts,
                                  (run.n_heads, run.n_layers))
    run_image_loop(images, root, run.run_images, writer, sinks,
                   lambda _: f'\nfigures and CSV tables written to {osp.abspath(args.out_dir)}',
                   after=writer.print_table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
