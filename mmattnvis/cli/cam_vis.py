"""Grad-CAM family maps per detection for MMDet and MMYOLO detectors (``grad-cam`` methods).

One figure per image: the first column shows all kept detections and the image-level map, then a
column per detection (its box, class and score above its maps), a row per method::

    python tools/cam_vis.py IMG CONFIG CHECKPOINT --method gradcam eigencam --target-layers neck
"""
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import (  # noqa: E402
    OneLineArgumentParser,
    add_drise_args,
    add_figure_args,
    add_input_args,
    add_model_args,
    cli_main,
    order_inputs,
)
from mmattnvis.utils.validate import validate_cli_args  # noqa: E402


def parse_args(argv=None):
    parser = OneLineArgumentParser(description='Grad-CAM family maps per detection')
    add_input_args(parser)
    parser.add_argument('--method', nargs='+', default=['gradcam'],
                        help='gradcam, gradcam++, xgradcam, eigencam, eigengradcam, layercam, '
                        'hirescam, ablationcam, randomcam, odam (odam-x1 ... odam-y2: box '
                        'coordinates), drise (several: one row each)')
    parser.add_argument('--target-layers', nargs='+', default=['neck'],
                        help='module names, e.g. neck backbone.stage4 neck.out_layers[2]')
    parser.add_argument('--topk', type=int, default=5,
                        help='explain at most this many detections per image (<=0: all)')
    parser.add_argument('--score-thr', type=float, default=0.3, help='bbox score threshold')
    parser.add_argument('--norm-in-bbox', action='store_true',
                        help='renormalise each map inside its box and blank it outside')
    parser.add_argument('--no-iou', action='store_true',
                        help='target is the class score only (default: IoU x class score)')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='image copies (detections) per forward/backward pass')
    add_drise_args(parser)
    parser.add_argument('--seed', type=int, default=0, help='seed of the D-RISE masks')
    parser.add_argument('--out-dir', default='./output', help='where figures are written')
    add_model_args(parser)
    add_figure_args(parser)
    return order_inputs(parser.parse_args(argv))


@cli_main
def main(argv=None) -> int:
    args = validate_cli_args(parse_args(argv))
    from mmengine.utils import ProgressBar

    from mmattnvis.apis import UnreadableImages, bgr_to_rgb, collect_images
    from mmattnvis.apis.cam import CAMOptions, CAMRun
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.apis.records import output_path, record_stem
    from mmattnvis.apis.run_sinks import RunSinks
    from mmattnvis.methods.explainers import DRISEOptions
    from mmattnvis.utils.cli import write_image_atomic
    from mmattnvis.visualization import DetectionFigure, FeatMapVisualizer

    images = collect_images(args.img)
    drise = DRISEOptions.from_args(args)
    options = CAMOptions(args.method, args.target_layers, args.score_thr, args.topk,
                         not args.no_iou, args.batch_size, args.norm_in_bbox, drise,
                         args.colormap, args.alpha)
    explainers = CAMRun.build_explainers(options, progress=len(images) == 1)
    model = init_model_from_args(args)
    run = CAMRun(model, options, explainers=explainers)
    vis = FeatMapVisualizer(name=f'mmattnvis_cam_{id(args)}')
    vis.dataset_meta = model.dataset_meta
    fig = DetectionFigure(vis, args.alpha, args.colormap, args.cell_width)
    sinks = RunSinks('cam', args.save_results, args.report,
                     {'tool': 'cam_vis', 'config': args.config, 'methods': list(args.method)})
    root = args.img if osp.isdir(args.img) else osp.dirname(args.img)
    progress = ProgressBar(len(images) * len(args.method))  # one step per image and method
    unreadable = UnreadableImages()
    for path in images:
        img = unreadable.load(path)
        if img is None:  # skipped, named at the end
            progress.update(len(args.method))
            continue
        record = run.run_batch([img], [path], on_method=progress.update)[0]
        title = (f'{osp.basename(path)}: {", ".join(args.method)} on '
                 f'{", ".join(args.target_layers)}')
        out = fig.draw_record(record, bgr_to_rgb(img), title,
                              f'no detections above score_thr={args.score_thr}')
        write_image_atomic(output_path(args.out_dir, path, root), out)
        sinks.add(record, record_stem(path, root))
    sinks.skipped(unreadable)
    report = sinks.close()
    done = len(images) - len(unreadable.skipped)
    unreadable.finish(len(images), f'\n{done} figure(s) written to {osp.abspath(args.out_dir)}'
                      + (f'; report: {report}' if report else ''))
    return 0

if __name__ == '__main__':
    sys.exit(main())
