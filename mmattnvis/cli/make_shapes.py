"""Generate a synthetic-shapes detection dataset in COCO format.

    python tools/make_shapes.py --out-dir data/shapes/train --num-images 3000 --seed 0
"""
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main  # noqa: E402


def parse_args(argv=None):
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', required=True, help='output directory')
    parser.add_argument('--num-images', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-size', type=int, default=128)
    parser.add_argument('--max-size', type=int, default=320)
    parser.add_argument('--max-objects', type=int, default=6)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    from mmattnvis.apis.shapes import make_shapes_dataset
    path = make_shapes_dataset(args.out_dir, args.num_images, args.seed,
                               (args.min_size, args.max_size), args.max_objects)
    print(f'{args.num_images} images and {path} written')
    return 0


if __name__ == '__main__':
    sys.exit(main())
