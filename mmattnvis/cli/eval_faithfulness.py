"""How faithful are saliency maps of a detector? A table per method, against baseline maps.

Pointing game (predicted box and, with COCO annotations, ground truth), energy-based pointing game,
effective area (share of the box above half the map's maximum), deletion and insertion AUC of each
detection's D-RISE similarity (IoU x class score) and OA = insertion - deletion; with object masks
in the annotations (shapes data) energy inside the mask and Mask-IoU; with ``--sanity`` the
model-randomisation sanity check (rank correlation after randomising head, neck, backbone)::

    python tools/eval_faithfulness.py CONFIG CHECKPOINT --data data/shapes/test \
        --methods gradcam gradcam++ eigencam --target-layers neck --max-images 20 --sanity \
        --baselines random box blur --box-curves

A random map is scored beside the methods; ``--baselines random box blur`` adds the box itself
and a Gaussian blob the size of the box, which know nothing of the model: where they score as
well as a method, that column is no evidence for it. ``--box-curves`` adds deletion and insertion
with only the box's pixels perturbed (cells of the image's longer side / 32): inside the box
the box map has nothing to order by, and the blob only the distance to the centre, the prior a
map must beat to show more than "the object is in the middle of its box".

``--data`` is a folder of images or a COCO-style folder (``annotations.json`` + ``images/``).
Writes ``faithfulness.md``, ``faithfulness.csv`` (per method) and ``faithfulness_detections.csv``.
"""
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import (  # noqa: E402
    OneLineArgumentParser,
    add_drise_args,
    add_model_args,
    add_result_args,
    cli_main,
)
from mmattnvis.utils.validate import validate_cli_args  # noqa: E402


def parse_args(argv=None):
    parser = OneLineArgumentParser(description='Faithfulness metrics of saliency methods')
    parser.add_argument('config', help='config file (or mmdet::/mmyolo:: path)')
    parser.add_argument('checkpoint', help='checkpoint file, "none" (random weights) or a '
                        'shipped model: mmattnvis::shapes/<name>.pth (yolov5_n_shapes, '
                        'retinanet_r18w32_fpn_shapes, dino_slim_shapes)')
    parser.add_argument('--data', required=True,
                        help='image folder, or COCO-style folder with annotations.json')
    parser.add_argument('--methods', nargs='+', default=['gradcam', 'eigencam'],
                        help="CAM methods, odam, drise, occlusion (see tools/cam_vis.py)")
    parser.add_argument('--baselines', nargs='+', default=['random'],
                        choices=['random', 'box', 'blur'],
                        help='maps scored beside the methods: a random map, the box itself and '
                        'a blob the size of the box (these two know only the box: a column '
                        'they win is no evidence for a method)')
    parser.add_argument('--target-layers', nargs='+', default=['neck'])
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--topk', type=int, default=5, help='detections per image (<=0: all)')
    parser.add_argument('--steps', type=int, default=20, help='deletion/insertion steps')
    parser.add_argument('--max-images', type=int, default=0, help='first N images (0: all)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--tolerance', type=float, default=0.0,
                        help='pointing-game tolerance in pixels')
    parser.add_argument('--no-insertion', action='store_true', help='skip insertion AUC and OA')
    parser.add_argument('--box-curves', action='store_true',
                        help='also deletion / insertion / OA with only the box\'s pixels '
                        'perturbed, cell by cell (2 more curves per map; the box map cannot win '
                        'them, the blob is the centre prior a map must beat)')
    parser.add_argument('--sanity', action='store_true',
                        help='model-randomisation sanity check: recompute every map with the '
                        'head, then also the neck, then also the backbone randomised and report '
                        'the rank correlation with the original (3 more maps per method)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random baseline and the D-RISE masks')
    add_drise_args(parser)
    add_result_args(parser)
    parser.add_argument('--out-dir', default='./outputs/faithfulness')
    parser.add_argument('--title', default='', help='heading of the markdown table')
    add_model_args(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> int:
    args = validate_cli_args(parse_args(argv))
    from mmattnvis.apis import UnreadableImages, build_test_pipeline
    from mmattnvis.apis.cam import DRISEOptions, check_method, resolve_module
    from mmattnvis.apis.faithfulness_runner import FaithfulnessOptions, evaluate, find_dataset
    from mmattnvis.apis.model import init_model_from_args
    from mmattnvis.utils.cli import ProgressBar
    from mmattnvis.utils.errors import UserInputError

    for m in args.methods:
        check_method(m)
    images, gt = find_dataset(args.data)
    if args.max_images > 0:
        images = images[:args.max_images]
    model = init_model_from_args(args)
    for name in args.target_layers:
        resolve_module(model, name)
    options = FaithfulnessOptions(methods=args.methods, target_layers=args.target_layers,
                                  score_thr=args.score_thr, topk=args.topk, steps=args.steps,
                                  batch_size=args.batch_size, tolerance=args.tolerance,
                                  seed=args.seed, insertion=not args.no_insertion,
                                  sanity=args.sanity, baselines=args.baselines,
                                  box_curves=args.box_curves,
                                  drise=DRISEOptions.from_args(args))
    from mmattnvis.apis.records import record_stem
    from mmattnvis.apis.run_sinks import RunSinks
    sinks = RunSinks('faithfulness', args.save_results, args.report,
                     {'tool': 'eval_faithfulness', 'config': args.config,
                      'methods': list(args.methods), 'layers': list(args.target_layers)})
    root = args.data if osp.isdir(args.data) else osp.dirname(args.data)
    progress = ProgressBar(len(images))
    unreadable = UnreadableImages()
    table = evaluate(model, build_test_pipeline(model.cfg), images, gt, options,
                     progress=progress.update, unreadable=unreadable,
                     on_record=lambda r, p: sinks.add(r, record_stem(p, root)))
    sinks.skipped(unreadable)
    if len(unreadable.skipped) == len(images):
        unreadable.finish(len(images))  # raises: no image could be read
    if not table.rows:
        raise UserInputError(f'no detections above score_thr={args.score_thr} in {args.data}')
    n_read = len(images) - len(unreadable.skipped)
    title = args.title or f'{osp.basename(args.config)} on {args.data} ({n_read} images)'
    paths = table.write(args.out_dir, title)
    sinks.update_info(title=title, summary=table.summary())
    report = sinks.close()
    if report:
        paths.append(report)
    print('\n' + table.markdown(title))
    # the skipped images (if any) are named in a warning line after this one
    unreadable.finish(len(images), f'written: {", ".join(osp.abspath(p) for p in paths)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
