"""Model-zoo sweep: does every shipped MMDet / MMYOLO detection config work with mmattnvis?

Each config is built on CPU with random weights (nothing is downloaded), runs one test-mode
forward on a small synthetic image with feature-map capture (plus decoder cross-attention capture
for DETR-family models) and renders one panel. Each config runs in its own process::

    python tools/zoo_check.py --jobs 2 --out outputs/zoo
    python tools/zoo_check.py --filter 'retinanet|yolov5' --out outputs/zoo_small

Writes ``zoo_matrix.md`` (one table per package/family, pass rate over buildable configs) and
``zoo_matrix.json``; the output of configs that do not pass is kept under ``logs/``.
"""
import argparse
import os.path as osp
import sys
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description='Check every MMDet / MMYOLO detection config')
    parser.add_argument('--filter', default=None, metavar='REGEX',
                        help='only configs whose "package/config path" matches (re.search), '
                        "e.g. 'retinanet|mmyolo/yolov5'")
    parser.add_argument('--out', default='outputs/zoo',
                        help='output directory (default: outputs/zoo)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='configs checked at once, one process each (default: 1)')
    parser.add_argument('--resume', action='store_true',
                        help='skip configs already in OUT/zoo_matrix.json')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds per config before it counts as failed (default: 120)')
    parser.add_argument('--img-size', type=int, default=128,
                        help='side of the synthetic image and of the test resize (default: 128)')
    parser.add_argument('--save-panels', action='store_true',
                        help='keep the feature-map panel each passing config renders, as '
                        'OUT/panels/<package>/<config>.png')
    parser.add_argument('--packages', nargs='+', default=['mmdet', 'mmyolo'],
                        choices=['mmdet', 'mmyolo'], help='packages to sweep')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'argument --jobs: must be >= 1, got {args.jobs}')
    if args.timeout <= 0:
        parser.error(f'argument --timeout: must be > 0, got {args.timeout:g}')
    if args.img_size < 32:
        parser.error(f'argument --img-size: must be >= 32, got {args.img_size}')
    return args


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.utils import ProgressBar

    from mmattnvis import zoo
    entries = zoo.discover_configs(args.filter, packages=args.packages)
    done = zoo.read_matrix(args.out) if args.resume else []
    seen = {(r['package'], r['config']) for r in done}
    todo = [e for e in entries if (e.package, e.config) not in seen]
    if args.resume:
        print(f'{len(entries) - len(todo)} of {len(entries)} config(s) already in '
              f'{osp.join(args.out, "zoo_matrix.json")}')
    records = list(done)
    note = zoo.versions_note(args.img_size)
    progress = ProgressBar(len(todo)) if todo else None

    def on_record(record) -> None:
        records.append(record)
        zoo.write_matrix(records, args.out, note)  # a killed sweep can --resume
        if progress is not None:
            progress.update()

    zoo.run_sweep(todo, jobs=args.jobs, timeout=args.timeout, img_size=args.img_size,
                  log_dir=osp.join(args.out, 'logs'), on_record=on_record,
                  panel_dir=osp.join(args.out, 'panels') if args.save_panels else None)
    md_path, json_path = zoo.write_matrix(records, args.out, note)
    summary = zoo.summarize(records)
    rate = '-' if summary['pass_rate'] is None else f"{100 * summary['pass_rate']:.1f} %"
    print(f"\n{summary['pass']} pass, {summary['fail']} fail, {summary['skip']} skip of "
          f"{summary['total']} config(s); pass rate {rate}")
    print(f'written: {md_path} {json_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
