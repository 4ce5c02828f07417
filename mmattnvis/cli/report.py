"""``mmattnvis report RESULTS_DIR [-o OUT_DIR]``: the HTML report of a saved run.

Reads a results directory written with ``--save-results`` (or a hook's ``results_dir=``) and
writes a report folder that opens from ``file://`` (``OUT_DIR/index.html``); the folder is
written atomically and replaces a previous report of that name.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Options of ``mmattnvis report``."""
    parser = OneLineArgumentParser(
        description='Build the HTML report (gallery, maps, interactive DETR attention) of a '
        'results directory written with --save-results.')
    parser.add_argument('results_dir', metavar='RESULTS_DIR', help='results directory')
    parser.add_argument('-o', '--out-dir', default=None,
                        help='report folder (default: RESULTS_DIR/report); open its index.html')
    parser.add_argument('--title', default=None, help='page title')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='initial heat-map weight over the image (a slider changes it)')
    parser.add_argument('--colormap', default='jet', help='OpenCV colormap name')
    parser.add_argument('--thumb-size', type=int, default=320,
                        help='longest side of the gallery thumbnails (px)')
    parser.add_argument('--max-side', type=int, default=2048,
                        help='longest side of the full-resolution view (px)')
    parser.add_argument('--jpeg-quality', type=int, default=75,
                        help='JPEG quality of images and thumbnails (1-100)')
    parser.add_argument('--quiet', action='store_true', help='no progress output')
    return parser.parse_args(argv)


@cli_main
def main(argv: Optional[List[str]] = None) -> int:
    """Build the report; ``error: ...`` and exit code 2 on bad input."""
    args = parse_args(argv)
    from mmattnvis.apis.report import report_results

    def progress(done: int, total: int) -> None:
        if not args.quiet and (done == total or done % 50 == 0):
            print(f'\r{done}/{total} images', end='\n' if done == total else '', flush=True)

    path = report_results(args.results_dir, args.out_dir, progress, title=args.title,
                          alpha=args.alpha, colormap=args.colormap, thumb_size=args.thumb_size,
                          max_side=args.max_side, jpeg_quality=args.jpeg_quality)
    print(f'report: {osp.abspath(path)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
