"""CAM cost per image against one forward + one backward of the detector.

Issue 14: the per-detection CAM path should cost about one forward and one backward per method.
Times, on the shipped shapes YOLOv5-n (neck, all detections of a shapes image, top 5):
one forward + backward of the model (the reference), grad-cam's batch of copies
(``one_forward=False``) and the one-forward path, for Grad-CAM and EigenCAM.

    python benchmarks/bench_cam.py [--repeat 3]
"""
import argparse
import os.path as osp

import numpy as np
import torch

from common import ROOT, paired_median_times, report


def run(repeat: int = 3) -> list:
    from mmattnvis.apis import build_test_pipeline, init_model, prepare_batch
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.methods.cam import DetectionCAM, detect
    cfg = osp.join(ROOT, 'configs/shapes/yolov5_n_shapes.py')
    ckpt = osp.join(ROOT, 'models/shapes/yolov5_n_shapes/weights.pth')
    model = init_model(cfg, ckpt)
    img, _ = make_shapes_image(np.random.default_rng(11), (320, 320), 6)
    data = prepare_batch([img], build_test_pipeline(model.cfg), ['s.png'])
    detected = detect(model, data, 0.05, 5)
    n = len(detected.detections[0])

    def forward_backward():
        x = detected.inputs[:1].clone().requires_grad_(True)
        out = model(x, mode='tensor')
        sum(t.sum() for level in out for t in (level if isinstance(level, (list, tuple))
                                                 else [level])).backward()
        model.zero_grad(set_to_none=True)

    rows = []
    for method in ('gradcam', 'eigencam'):
        copies = DetectionCAM(method, ['neck'], one_forward=False)
        one = DetectionCAM(method, ['neck'])
        t_ref, t_one, r_one = paired_median_times(
            forward_backward, lambda: one.explain(model, detected=detected), repeat)
        _, t_copies, r_copies = paired_median_times(
            forward_backward, lambda: copies.explain(model, detected=detected), repeat)
        rows.append(report(
            f'{method}, {n} detections + image map, vs one forward+backward',
            {'forward+backward': t_ref, 'batch of copies': t_copies, 'one forward': t_one},
            r_one, f'about 1-2x one forward+backward (copies: {r_copies:.2f}x)', r_one <= 2.5))
    return rows


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--repeat', type=int, default=3)
    torch.set_grad_enabled(True)
    run(parser.parse_args().repeat)
