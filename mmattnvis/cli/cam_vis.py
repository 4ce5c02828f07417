"""Grad-CAM family maps per detection for MMDet and MMYOLO detectors (``grad-cam`` methods).

One figure per image: the first column shows all kept detections and the image-level map, then a
column per detection (its box, class and score above its maps), a row per method::

    python tools/cam_vis.py IMG CONFIG CHECKPOINT --method gradcam eigencam --target-layers neck
    python tools/cam_vis.py IMG CONFIG CHECKPOINT --method auto   # recommended for the model

Several target layers give one fused map per detection (each layer's map normalised, then
fused), all from one forward and one backward per detection.
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
                        'coordinates), drise, occlusion (each box, cell by cell; no layers), '
                        'or auto: the recommended method and layers for '
                        "the model's family, printed and stored in the record "
                        '(several: one row each)')
    parser.add_argument('--target-layers', nargs='+', default=None,
                        help='module names, e.g. neck backbone.stage4 neck.out_layers[2] '
                        '(default: neck; for --method auto its recommended layers); several '
                        "give one fused map; auto: the recommended set for the model's family "
                        '(backbone stages feeding the neck, then the neck)')
    parser.add_argument('--fusion', choices=('mean', 'max', 'gmean'), default=None,
                        help='how the maps of several target layers are fused after each is '
                        'normalised (default: mean; with auto: the recommended one)')
    parser.add_argument('--pool-stride', type=int, default=None, metavar='PX',
                        help='with several target layers, average each layer\'s map on cells '
                        'of PX input pixels before fusing (default: 0 = off; with auto: the '
                        'recommended one, 16)')
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
    from mmattnvis.apis import collect_images
    from mmattnvis.apis.cam import CAMOptions, CAMRun, DRISEOptions
    from mmattnvis.apis.figure_writers import DetectionFigureWriter, FigureOptions
    from mmattnvis.apis.image_loop import ImageLoop
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.apis.run_sinks import RunSinks

    figure_opts = FigureOptions.from_args(args)
    images = collect_images(args.img)
    drise = DRISEOptions.from_args(args)
    options = CAMOptions(args.method, args.target_layers, args.score_thr, args.topk,
                         not args.no_iou, args.batch_size, args.norm_in_bbox, drise,
                         args.colormap, args.alpha, args.fusion, args.pool_stride)
    explainers = CAMRun.build_explainers(options, progress=len(images) == 1)
    model = init_model_from_args(args)
    run = CAMRun(model, options, explainers=explainers)
    if run.auto is not None:
        print(run.auto.describe())
    methods = [name for name, _, _ in run.plan]
    layers = ', '.join(dict.fromkeys(n for _, ls, _ in run.plan for n in ls)) or 'the image'
    root = args.img if osp.isdir(args.img) else osp.dirname(args.img)
    writer = DetectionFigureWriter(
        args.out_dir, root, model.dataset_meta,
        lambda path, _: f'{osp.basename(path)}: {", ".join(methods)} on {layers}',
        f'no detections above score_thr={args.score_thr}', args.alpha, args.colormap,
        args.cell_width, figure_opts, task='cam')
    sinks = RunSinks('cam', args.save_results, args.report,
                     {'tool': 'cam_vis', 'config': args.config, 'methods': methods})
    loop = ImageLoop(images, root, sinks, steps=len(args.method))  # a step per method
    loop.run(lambda imgs, paths: run.run_images(imgs, paths, on_method=loop.step), writer)
    loop.finish(lambda n: f'\n{n} figure(s) written to {osp.abspath(args.out_dir)}')
    return 0

if __name__ == '__main__':
    sys.exit(main())
