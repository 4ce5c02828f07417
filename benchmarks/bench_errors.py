"""Cost of TIDE error labelling inside ``runner.test()`` (issue 27's goal: <= 5 %).

Shipped shapes YOLOv5-n, ``N`` generated shapes images, batch size 2. ``runner.test()`` without
hooks against the same with ``mmattnvis.ErrorHook(method=None, reasons=False)`` (labels from
the runner's own outputs: no extra forward pass) and with ``reasons=True`` (one pass with every
candidate for images with a missed object). Runs alternate ``--repeats`` times; medians.

The hook's wall-clock overhead is split (time spent inside its calls, measured by wrapping them)
into *labelling* (``ErrorRun.run_batch`` + TIDE's summary) and the *record sink* every hook pays
(each sample's record written atomically as JSON + npz, the merge of every rank's records,
``errors.html``); the remainder is MMEngine's (e.g. its config dump grows with the hook entry).

    python benchmarks/bench_errors.py [--images 100] [--repeats 5] [--score-thr 0.3]
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time
from collections import defaultdict

from common import ROOT, runner_test_time

sys.path.insert(0, osp.join(ROOT, 'tests'))


def _timed(owner, name: str, bucket: str, spent: dict) -> None:
    """Wrap ``owner.name`` so that its wall-clock time adds to ``spent[bucket]``."""
    func = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            spent[bucket] += time.perf_counter() - t0

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--images', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--score-thr', type=float, default=0.3)
    args = parser.parse_args()
    import mmattnvis.hooks.error_hook as error_hook
    from mmattnvis.apis.errors import ErrorRun
    from mmattnvis.apis.loop_results import LoopResults
    from mmattnvis.utils.package_data import shipped_model

    from runner_utils import make_dataset, runner_cfg
    spent: dict = defaultdict(float)
    _timed(ErrorRun, 'run_batch', 'labels', spent)
    _timed(error_hook, 'summarize_labels', 'labels', spent)
    for name in ('__init__', 'add', 'finish', 'merged'):
        _timed(LoopResults, name, 'sink', spent)
    for name in ('record_error_rows', 'errors_page'):
        _timed(error_hook, name, 'sink', spent)
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
        times: dict = {k: [] for k in variants}
        parts: dict = {k: defaultdict(list) for k in variants}
        for r in range(args.repeats):
            for name, hooks in variants.items():
                cfg = runner_cfg(config, *data, osp.join(tmp, f'{name}{r}'), custom_hooks=hooks,
                                 batch_size=2, scale=256)
                cfg.load_from = weights
                spent.clear()
                times[name].append(runner_test_time(cfg))
                for bucket in ('labels', 'sink'):
                    parts[name][bucket].append(spent[bucket])
    base = statistics.median(times['plain'])
    print(f'{args.images} images, median of {args.repeats} (s): ' + ', '.join(
        f'{k} {statistics.median(v):.3f}' for k, v in times.items()))
    for k in ('labels', 'labels+reasons'):
        labels, sink = (statistics.median(parts[k][b]) for b in ('labels', 'sink'))
        print(f'{k}: wall clock +{100 * (statistics.median(times[k]) / base - 1):.1f} % of '
              f'runner.test(); inside the hook: labelling {100 * labels / base:.1f} % '
              f'({1000 * labels / args.images:.2f} ms/image), record sink '
              f'{100 * sink / base:.1f} % ({1000 * sink / args.images:.2f} ms/image)')


if __name__ == '__main__':
    main()
