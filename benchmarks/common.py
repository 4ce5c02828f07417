"""Timing helpers shared by the benchmark scripts (medians over repetitions after warm-up)."""
import os.path as osp
import statistics
import time
import warnings
from typing import Callable, Dict, List

warnings.filterwarnings('ignore')
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.abspath(osp.join(ROOT, '..', 'shared', 'fixtures'))


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_median_times(fn_a: Callable[[], object], fn_b: Callable[[], object],
                        repeat: int = 5, warmup: int = 1) -> tuple:
    """Median wall times of ``fn_a`` and ``fn_b`` measured alternately (a, b, a, b, ...), so that
    slow phases of a shared machine hit both sides alike; the ratio is the median of the
    per-pair ratios. Returns ``(median_a, median_b, ratio_b_over_a)``."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta: List[float] = []
    tb: List[float] = []
    for _ in range(repeat):
        for fn, out in ((fn_a, ta), (fn_b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    ratio = statistics.median(b / a for a, b in zip(ta, tb))
    return statistics.median(ta), statistics.median(tb), ratio


def report(name: str, rows: Dict[str, float], ratio: float, goal: str, ok: bool) -> dict:
    """Print one benchmark's result and return it as a row for results.md."""
    timings = ', '.join(f'{k} {v * 1000:.1f} ms' for k, v in rows.items())
    verdict = 'n/a' if ok is None else ('OK' if ok else 'MISSED')
    print(f'{name}: {timings}; ratio {ratio:.3f} (goal: {goal}) -> {verdict}')
    return dict(name=name, timings=timings, ratio=ratio, goal=goal, ok=ok)


def runner_test_time(cfg) -> float:
    """Seconds of ``runner.test()`` of a runner built from ``cfg`` (the build not counted)."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    t0 = time.perf_counter()
    runner.test()
    return time.perf_counter() - t0
