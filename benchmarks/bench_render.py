"""Top-k grid rendering vs MMEngine's ``Visualizer.draw_featmap`` (matplotlib).

topk=20, arrangement 4x5, a 256x80x80 feature map on a 640x640 image. Goal: >= 10x faster.
"""
import numpy as np
import torch

from common import median_time, report


def run(repeat: int = 5) -> dict:
    from mmengine.visualization import Visualizer

    from mmattnvis.visualization import FeatMapVisualizer
    torch.manual_seed(0)
    featmap = torch.rand(256, 80, 80)
    image = np.random.default_rng(0).integers(0, 255, (640, 640, 3), dtype=np.uint8)
    kwargs = dict(channel_reduction=None, topk=20, arrangement=(4, 5))
    t_ref = median_time(lambda: Visualizer.draw_featmap(featmap, image, **kwargs), repeat)
    t_ours = median_time(lambda: FeatMapVisualizer.draw_featmap(featmap, image, **kwargs),
                         repeat)
    speedup = t_ref / t_ours
    return report('top-k grid render (20 of 256x80x80 on 640x640)',
                  {'mmengine draw_featmap': t_ref, 'mmattnvis': t_ours}, speedup,
                  'speed-up >= 10', speedup >= 10)


if __name__ == '__main__':
    run()
