"""Cost of TIDE error labelling inside ``runner.test()`` (issue 27's goal: <= 5 %).

Shipped shapes YOLOv5-n, ``N`` generated shapes images, batch size 2. ``runner.test()`` without
hooks against the same with ``mmattnvis.ErrorHook(method=None, reasons=False)`` (labels only,
from the runner's own outputs, no records written) and with ``reasons=True`` (one pass with every
candidate for images with a missed object). Runs alternate ``--repeats`` times; the median is
reported. Also counts the extra forward passes: labels alone add none.

    python benchmarks/bench_errors.py [--images 40] [--repeats 3] [--score-thr 0.3]
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile

from common import ROOT, runner_test_time

sys.path.insert(0, osp.join(ROOT, 'tests'))



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--images', type=int, default=40)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--score-thr', type=float, default=0.3)
    args = parser.parse_args()
    from mmattnvis.utils.package_data import shipped_model

    from runner_utils import make_dataset, runner_cfg
    config, weights = shipped_model('yolov5_n_shapes')
    variants = {
        'plain': [],
        'labels': [dict(type='mmattnvis.ErrorHook', method=None, reasons=False,
                        results_dir=None, score_thr=args.score_thr)],
        'labels+reasons': [dict(type='mmattnvis.ErrorHook', method=None, reasons=True,
                                results_dir=None, score_thr=args.score_thr)],
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(osp.join(tmp, 'data'), num_images=args.images, seed=4)
        times = {k: [] for k in variants}
        for r in range(args.repeats):
            for name, hooks in variants.items():
                cfg = runner_cfg(config, *data, osp.join(tmp, f'{name}{r}'), custom_hooks=hooks,
                                 batch_size=2, scale=256)
                cfg.load_from = weights
                times[name].append(runner_test_time(cfg))
    base = statistics.median(times['plain'])
    print(f'{args.images} images, median of {args.repeats} (s): ' + ', '.join(
        f'{k} {statistics.median(v):.3f}' for k, v in times.items()))
    for k in ('labels', 'labels+reasons'):
        print(f'{k}: +{100 * (statistics.median(times[k]) / base - 1):.1f} % of runner.test()')


if __name__ == '__main__':
    main()
