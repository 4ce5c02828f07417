"""FeatMapVisHook overhead on ``runner.test()`` over a small synthetic COCO dataset.

YOLOv5-n built from MMYOLO's config, 100 shapes images at 320 px, batch size 1; the hook draws the
neck maps (three levels) through the runner visualizer's LocalVisBackend. Goal: <= 5 % wall time at
interval=50; the ratio at interval=1 is reported too.
"""
import os.path as osp
import sys
import tempfile
import time

from common import ROOT, report

sys.path.insert(0, osp.join(ROOT, 'tests'))
CONFIG = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'


def _time_test(cfg) -> float:
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    t0 = time.perf_counter()
    runner.test()
    return time.perf_counter() - t0


def run(repeat: int = 3, num_images: int = 100) -> list:
    from runner_utils import make_dataset, runner_cfg
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root, ann = make_dataset(osp.join(tmp, 'data'), num_images=num_images, seed=21)
        hook = dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'],
                    channel_reduction='squeeze_mean')

        def cfg_for(interval):
            hooks = [] if interval is None else [dict(hook, interval=interval)]
            return runner_cfg(CONFIG, root, ann, osp.join(tmp, f'w{interval}'),
                              custom_hooks=hooks, batch_size=1, scale=320)

        _time_test(cfg_for(None))  # warm-up
        times = {None: [], 50: [], 1: []}
        for _ in range(repeat):  # interleaved, so drift hits all variants alike
            for interval in times:
                times[interval].append(_time_test(cfg_for(interval)))
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        for interval, goal in ((50, 1.05), (1, None)):
            ratio = med[interval] / med[None]
            rows.append(report(
                f'FeatMapVisHook overhead in runner.test(), interval={interval}, '
                f'{num_images} images', {'no hook': med[None], 'hook': med[interval]}, ratio,
                '<= 1.05' if goal else 'reported', ratio <= goal if goal else True))
    return rows


if __name__ == '__main__':
    run()
