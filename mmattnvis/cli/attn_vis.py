"""DETR-family attention per detected query: decoder cross-attention, encoder self-attention at
reference points, deformable sampling points, Chefer et al. relevance, and encoder rollout.

    python tools/attn_vis.py IMG CONFIG CHECKPOINT --mode decoder --layers -1 --head-fusion mean
    python tools/attn_vis.py IMG CONFIG CHECKPOINT --mode encoder --points 120,80 300,200
    python tools/attn_vis.py IMG CONFIG CHECKPOINT --mode rollout --discard-ratio 0.9 --gradient
"""
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import (  # noqa: E402
    OneLineArgumentParser,
    add_figure_args,
    add_input_args,
    add_model_args,
    cli_main,
    order_inputs,
)
from mmattnvis.utils.validate import validate_cli_args  # noqa: E402


def parse_args(argv=None):
    parser = OneLineArgumentParser(description='Attention maps of DETR-family detectors')
    add_input_args(parser)
    parser.add_argument('--mode', default='decoder',
                        choices=['decoder', 'encoder', 'deformable', 'relevance', 'rollout'])
    parser.add_argument('--layers', nargs='+', type=int, default=None,
                        help='layer indices (negative from the end); default: the last layer')
    parser.add_argument('--heads', nargs='+', type=int, default=None,
                        help='only these heads, 0..H-1 (default: all)')
    parser.add_argument('--head-fusion', default='mean', choices=['mean', 'max', 'min', 'none'],
                        help='fuse heads, or "none" for one row per head')
    parser.add_argument('--points', nargs='+', default=None,
                        help='reference points X,Y in original-image pixels (--mode encoder, '
                        'rollout)')
    parser.add_argument('--direction', choices=['to', 'from'], default=None,
                        help='encoder/rollout at a point: "to" = how much every token attends '
                        'TO the point (the column; default, as the DETR notebook), "from" = '
                        'what the point attends to (the row; the only one of deformable '
                        'encoders)')
    parser.add_argument('--discard-ratio', type=float, default=0.0,
                        help='rollout: drop this fraction of the lowest attention per row')
    parser.add_argument('--gradient', action='store_true',
                        help='rollout: gradient rollout per detection (target: its class '
                        'logit)')
    parser.add_argument('--score-thr', type=float, default=0.3, help='bbox score threshold')
    parser.add_argument('--max-queries', type=int, default=8,
                        help='at most this many detections (columns) per image')
    parser.add_argument('--per-layer', action='store_true',
                        help='relevance: also the map after each decoder layer')
    parser.add_argument('--out-dir', default='./output', help='where figures are written')
    add_model_args(parser)
    add_figure_args(parser)
    return order_inputs(parser.parse_args(argv))


@cli_main
def main(argv=None) -> int:
    args = validate_cli_args(parse_args(argv))
    from mmattnvis.apis import collect_images
    from mmattnvis.apis.attention import AttentionRun
    from mmattnvis.apis.attention_runner import (
        AttentionOptions,
        figure_title,
        no_detection_note,
        parse_points,
        points_in_image,
    )
    from mmattnvis.apis.figure_writers import DetectionFigureWriter, FigureOptions
    from mmattnvis.apis.image_loop import run_image_loop
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.apis.options import check_draw_options
    from mmattnvis.apis.run_sinks import RunSinks

    options = AttentionOptions(mode=args.mode, layers=args.layers, heads=args.heads,
                               head_fusion=args.head_fusion, points=parse_points(args.points),
                               score_thr=args.score_thr, max_queries=args.max_queries,
                               per_layer=args.per_layer, direction=args.direction,
                               discard_ratio=args.discard_ratio, gradient=args.gradient)
    check_draw_options(args.colormap, args.alpha)
    figure_opts = FigureOptions.from_args(args)
    images = collect_images(args.img)
    model = init_model_from_args(args)
    sinks = RunSinks('attention', args.save_results, args.report,
                     {'tool': 'attn_vis', 'config': args.config, 'mode': args.mode})
    run = AttentionRun(model, options, keep_encoder=sinks.active)
    root = args.img if osp.isdir(args.img) else osp.dirname(args.img)

    def title(path, record):
        deformable = any('points' in m.meta for m in record.maps.values())
        return figure_title(options, osp.basename(path), deformable)

    def records(imgs, paths):
        for img in imgs:
            if options.points:
                points_in_image(options.points, img.shape)
        return run.run_images(imgs, paths)

    writer = DetectionFigureWriter(args.out_dir, root, model.dataset_meta, title,
                                   no_detection_note(options.score_thr), args.alpha,
                                   args.colormap, args.cell_width, figure_opts, task='attn')
    run_image_loop(images, root, records, writer, sinks,
                   lambda n: f'\n{n} figure(s) written to {osp.abspath(args.out_dir)}')
    return 0

if __name__ == '__main__':
    sys.exit(main())
