"""How often does a DETR-family query's last-layer cross-attention (head-averaged) peak inside
its own predicted box? Prints the share over a dataset::

    python tools/eval_attention_pointing.py CONFIG CHECKPOINT --data data/shapes/test
"""
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import OneLineArgumentParser, add_model_args, cli_main  # noqa: E402


@cli_main
def main(argv=None) -> int:
    parser = OneLineArgumentParser(description='Cross-attention pointing game of a DETR')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--data', required=True,
                        help='image folder, or COCO-style folder with annotations.json')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--max-images', type=int, default=0, help='first N images (0: all)')
    parser.add_argument('--batch-size', type=int, default=8)
    add_model_args(parser)
    args = parser.parse_args(argv)
    from mmengine.utils import ProgressBar

    from mmattnvis.apis import build_test_pipeline, load_image, prepare_batch
    from mmattnvis.apis.attention_pointing import cross_attention_pointing
    from mmattnvis.apis.attention_runner import check_detr_family
    from mmattnvis.apis.faithfulness_runner import find_dataset
    from mmattnvis.apis.model import init_model_from_args

    images, _ = find_dataset(args.data)
    if args.max_images > 0:
        images = images[:args.max_images]
    model = init_model_from_args(args)
    check_detr_family(model)
    pipeline = build_test_pipeline(model.cfg)
    hits = []
    progress = ProgressBar(len(images))
    for start in range(0, len(images), max(1, args.batch_size)):
        chunk = images[start:start + args.batch_size]
        data = prepare_batch([load_image(p) for p in chunk], pipeline, chunk)
        hits += [hit for _, hit in cross_attention_pointing(model, data, args.score_thr)]
        for _ in chunk:
            progress.update()
    share = sum(hits) / len(hits) if hits else float('nan')
    print(f'\n{sum(hits)}/{len(hits)} detections ({100 * share:.1f} %) have their last-layer '
          f'cross-attention peak inside their box ({len(images)} images, '
          f'score > {args.score_thr})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
