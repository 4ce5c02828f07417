"""D-RISE speed.

1. mmattnvis' D-RISE (batched masked passes) against ``vision-explanation-methods``' D-RISE
   (one masked image per forward) on the same torchvision Faster R-CNN R50-FPN, built with
   ``weights=None, weights_backbone=None`` (BatchNorm statistics set from noise so that the
   scores depend on the image, see ``tests/test_drise.py``), the same image, targets and
   number of masks. Goal: >= 5x masks per second. Skipped when the package is absent.
2. Cost per image of D-RISE on the shipped shapes YOLOv5-n for N = 1000, 2000, 4000: linear in
   N (ms per mask about constant) and the share of the time spent outside the model's
   ``predict`` (mask making, blending, similarity, accumulation) under 15 %.

    python benchmarks/bench_drise.py [--masks 1000 2000 4000] [--frcnn-masks 32]
"""
import argparse
import os.path as osp
import sys
import time

from common import ROOT, paired_median_times, report

sys.path.insert(0, osp.join(ROOT, 'tests'))


def bench_vs_vem(num_masks: int = 32, size: int = 320, batch: int = 16, repeat: int = 3):
    try:
        from vision_explanation_methods.explanations import drise as vem
        from vision_explanation_methods.explanations.common import (
            DetectionRecord,
            GeneralObjectDetectionModelWrapper,
        )
    except ImportError:
        print('vision-explanation-methods is not installed: comparison skipped')
        return []
    import torch
    from test_drise import random_faster_rcnn
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    from mmattnvis.methods.drise import Predictions, RandomMasks, drise_saliency
    model = random_faster_rcnn(fasterrcnn_resnet50_fpn, size, num_classes=91)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(list(image))[0]
    k = min(5, base['boxes'].shape[0])
    boxes, scores, labels = base['boxes'][:k], base['scores'][:k], base['labels'][:k]

    def ours_predict(x):
        return [Predictions(o['boxes'], o['scores'], o['labels']) for o in model(list(x))]

    class Wrapper(GeneralObjectDetectionModelWrapper):

        def predict(self, x):
            return [DetectionRecord(o['boxes'], o['scores'],
                                    torch.nn.functional.one_hot(o['labels'], 91).float())
                    for o in model(list(x))]

    target = DetectionRecord(boxes, scores, torch.nn.functional.one_hot(labels, 91).float())

    def ours():
        masks = RandomMasks(num_masks, 16, 0.5, (size, size), seed=0)
        drise_saliency(ours_predict, image, (0, size, 0, size),
                       Predictions(boxes, scores, labels), masks, batch, center=True)

    def theirs():
        vem.DRISE_saliency(Wrapper(), image, [target], num_masks, mask_res=(16, 16))

    t_ours, t_theirs, ratio = paired_median_times(ours, theirs, repeat=repeat, warmup=0)
    return [report(f'D-RISE vs vision-explanation-methods, Faster R-CNN R50-FPN {size} px, '
                   f'{k} targets, N={num_masks} (batch {batch}); masks/s '
                   f'{num_masks / t_ours:.1f} vs {num_masks / t_theirs:.1f}',
                   {'vision-explanation-methods': t_theirs, 'mmattnvis': t_ours}, ratio,
                   'speed-up >= 5', ratio >= 5)]


def bench_cost_per_image(counts=(1000, 2000, 4000), batch: int = 32):
    import numpy as np
    import torch

    from mmattnvis.apis import build_test_pipeline, init_model, prepare_batch
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.methods import drise as drise_mod
    from mmattnvis.methods.cam import detect
    model = init_model(osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py'),
                       osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth'),
                       device='cpu')
    img, _ = make_shapes_image(np.random.default_rng(11))
    data = prepare_batch([img], build_test_pipeline(model.cfg), ['s.png'])
    detected = detect(model, data, 0.3, 5)
    inside = [0.0]
    original = drise_mod.mmdet_predict

    def timed_predict(m, sample):
        fn = original(m, sample)

        def predict(batch_tensor):
            t0 = time.perf_counter()
            out = fn(batch_tensor)
            inside[0] += time.perf_counter() - t0
            return out

        return predict

    drise_mod.mmdet_predict = timed_predict
    rows, per_mask = [], {}
    try:
        for n in counts:
            inside[0] = 0.0
            explainer = drise_mod.DRISE(n, 16, 0.5, batch_size=batch, progress=False)
            t0 = time.perf_counter()
            with torch.no_grad():
                explainer.explain(model, detected=detected)
            total = time.perf_counter() - t0
            per_mask[n] = total / n
            outside = 1.0 - inside[0] / total
            rows.append(report(
                f'D-RISE cost per image, shapes YOLOv5-n, {len(detected.detections[0])} '
                f'targets, N={n} (batch {batch}); {1000 * total / n:.2f} ms per mask; share '
                f'outside predict', {'total': total, 'predict': inside[0]}, outside,
                'share outside < 0.15', outside < 0.15))
    finally:
        drise_mod.mmdet_predict = original
    lo, hi = min(counts), max(counts)
    lin = per_mask[hi] / per_mask[lo]
    rows.append(report(f'D-RISE linear in N: ms per mask at N={hi} over N={lo}',
                       {f'N={lo}': per_mask[lo], f'N={hi}': per_mask[hi]}, lin,
                       '0.8 .. 1.2', 0.8 <= lin <= 1.2))
    return rows


def run(masks=(1000, 2000, 4000), frcnn_masks: int = 32, repeat: int = 3) -> list:
    return bench_vs_vem(frcnn_masks, repeat=repeat) + bench_cost_per_image(masks)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--masks', type=int, nargs='+', default=[1000, 2000, 4000])
    parser.add_argument('--frcnn-masks', type=int, default=32)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    run(args.masks, args.frcnn_masks, args.repeat)
