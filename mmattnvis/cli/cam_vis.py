"""Grad-CAM family maps per detection for MMDet and MMYOLO detectors (``grad-cam`` methods).

One figure per image: the first column shows all kept detections and the image-level map, then a
column per detection (its box, class and score above its maps), a row per method::

    python tools/cam_vis.py IMG CONFIG CHECKPOINT --method gradcam eigencam --target-layers neck
"""
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import (OneLineArgumentParser, add_drise_args,  # noqa: E402
                                 add_figure_args, add_input_args, add_model_args, cli_main,
                                 order_inputs)
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

    from mmattnvis.apis import (UnreadableImages, bgr_to_rgb, build_test_pipeline,
                                collect_images, prepare_batch)
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.capture.names import resolve_module
    from mmattnvis.methods.cam import detect
    from mmattnvis.methods.explainers import DRISEOptions, build_explainer
    from mmattnvis.render.image import blend_rgba, colormap_code
    from mmattnvis.utils.cli import write_image_atomic
    from mmattnvis.utils.errors import UserInputError
    from mmattnvis.visualization import AttentionFigure, FeatMapVisualizer

    try:
        colormap_code(args.colormap)
    except ValueError as err:
        raise UserInputError(str(err)) from None
    images = collect_images(args.img)
    drise = DRISEOptions(args.drise_masks, args.drise_grid, args.drise_prob, args.drise_batch,
                         args.seed)
    cams = [build_explainer(m, args.target_layers, use_iou=not args.no_iou,
                            batch_size=args.batch_size, norm_in_bbox=args.norm_in_bbox,
                            drise=drise, progress=len(images) == 1) for m in args.method]
    model = init_model_from_args(args)
    for name in args.target_layers:
        resolve_module(model, name)
    pipeline = build_test_pipeline(model.cfg)
    vis = FeatMapVisualizer(name=f'mmattnvis_cam_{id(args)}')
    vis.dataset_meta = model.dataset_meta
    classes = (model.dataset_meta or {}).get('classes') or []
    fig = AttentionFigure(vis, args.alpha, args.colormap, args.cell_width)
    root = args.img if osp.isdir(args.img) else osp.dirname(args.img)
    progress = ProgressBar(len(images) * len(cams))  # one step per image and method
    unreadable = UnreadableImages()
    for path in images:
        img = unreadable.load(path)
        if img is None:  # skipped, named at the end
            progress.update(len(cams))
            continue
        data = prepare_batch([img], pipeline, [path])
        detected = detect(model, data, args.score_thr, args.topk)  # shared by the methods
        results = []
        for cam in cams:
            results.append(cam.explain(model, detected=detected))
            progress.update()
        rgb = bgr_to_rgb(img)
        dets = detected.detections[0]
        if not dets:
            out = fig.note(rgb, f'no detections above score_thr={args.score_thr}')
        else:
            layer = vis.draw_instances_layer(rgb.shape[:2], detected.samples[0],
                                             score_thr=args.score_thr)
            all_boxes = rgb if layer is None else blend_rgba(rgb, layer)
            cols = [fig.column(all_boxes, None, [r.image_maps[0] for r in results], None,
                               header='image-level')]
            for i, det in enumerate(dets):
                cls = classes[det.label] if det.label < len(classes) else str(det.label)
                cols.append(fig.column(rgb, det, [r.maps[0][i] for r in results], None,
                                       header=f'{cls} {det.score:.2f}'))
            out = fig.figure(cols, f'{osp.basename(path)}: {", ".join(args.method)} on '
                             f'{", ".join(args.target_layers)}')
        rel = osp.relpath(path, root) if root else osp.basename(path)
        write_image_atomic(osp.join(args.out_dir, osp.splitext(rel)[0] + '.png'), out)
    done = len(images) - len(unreadable.skipped)
    unreadable.finish(len(images), f'\n{done} figure(s) written to {osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
