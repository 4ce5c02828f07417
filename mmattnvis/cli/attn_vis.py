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
    from mmattnvis.apis import UnreadableImages, bgr_to_rgb, collect_images
    from mmattnvis.apis.attention import AttentionRun
    from mmattnvis.apis.attention_runner import (
        AttentionOptions,
        figure_title,
        no_detection_note,
        parse_points,
        points_in_image,
    )
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.apis.options import check_draw_options
    from mmattnvis.apis.records import output_path, record_stem
    from mmattnvis.apis.run_sinks import RunSinks
    from mmattnvis.render.options import FigureOptions
    from mmattnvis.utils.cli import ProgressBar
    from mmattnvis.visualization import DetectionFigure, FeatMapVisualizer
    from mmattnvis.visualization.figure_output import write_figure

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
    vis = FeatMapVisualizer(name=f'mmattnvis_attn_{id(options)}')
    vis.dataset_meta = model.dataset_meta
    fig = DetectionFigure(vis, args.alpha, args.colormap, args.cell_width, figure_opts)
    root = args.img if osp.isdir(args.img) else osp.dirname(args.img)
    progress = ProgressBar(len(images))
    written = 0
    unreadable = UnreadableImages()
    for path in images:
        img = unreadable.load(path)
        if img is None:  # skipped, named at the end
            progress.update()
            continue
        if options.points:
            points_in_image(options.points, img.shape)
        record = run.run_images([img], [path])[0]
        name = osp.basename(path)
        deformable = any('points' in m.meta for m in record.maps.values())
        sheet = fig.record_sheet(record, bgr_to_rgb(img),
                                 figure_title(options, name, deformable),
                                 no_detection_note(options.score_thr))
        write_figure(output_path(args.out_dir, path, root, ext=figure_opts.extension()), sheet,
                     figure_opts)
        sinks.add(record, record_stem(path, root))
        written += 1
        progress.update()
    sinks.skipped(unreadable)
    report = sinks.close()
    unreadable.finish(len(images), f'\n{written} figure(s) written to {osp.abspath(args.out_dir)}'
                      + (f'; report: {report}' if report else ''))
    return 0

if __name__ == '__main__':
    sys.exit(main())
