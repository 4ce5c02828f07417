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


def bench_vs_vem(num_masks: int = 32, size: int = 320, batch: int = 16, repeat: int = 3,
                 batches=(1, 4)):
    """Masks per second of both implementations on the same model, image, targets and N, and
    the share of each one's time spent in the model's forward (``model(list(x))``).

    Both sides see the same input resolution: the model is built with ``min_size = max_size =
    size`` so that torchvision's ``GeneralizedRCNNTransform`` does not resize the ``size`` px
    image (its default would be 800 px); a hook on the backbone's first convolution checks it.
    """
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
    in_forward = {'ours': 0.0, 'theirs': 0.0}
    wall = {'ours': 0.0, 'theirs': 0.0}
    seen = set()
    hook = model.backbone.body.conv1.register_forward_hook(
        lambda m, i, o: seen.add(tuple(i[0].shape[-2:])))

    def forward(x, side):
        t0 = time.perf_counter()
        out = model(list(x))
        in_forward[side] += time.perf_counter() - t0
        return out

    def ours_predict(x):
        return [Predictions(o['boxes'], o['scores'], o['labels']) for o in forward(x, 'ours')]

    class Wrapper(GeneralObjectDetectionModelWrapper):

        def predict(self, x):
            return [DetectionRecord(o['boxes'], o['scores'],
                                    torch.nn.functional.one_hot(o['labels'], 91).float())
                    for o in forward(x, 'theirs')]

    target = DetectionRecord(boxes, scores, torch.nn.functional.one_hot(labels, 91).float())

    def ours(b=batch):
        t0 = time.perf_counter()
        masks = RandomMasks(num_masks, 16, 0.5, (size, size), seed=0)
        drise_saliency(ours_predict, image, (0, size, 0, size),
                       Predictions(boxes, scores, labels), masks, b, center=True)
        wall['ours'] += time.perf_counter() - t0

    def theirs():
        t0 = time.perf_counter()
        vem.DRISE_saliency(Wrapper(), image, [target], num_masks, mask_res=(16, 16))
        wall['theirs'] += time.perf_counter() - t0

    t_ours, t_theirs, ratio = paired_median_times(ours, theirs, repeat=repeat, warmup=0)
    hook.remove()
    assert seen == {(size, size)}, f'the backbone saw {seen}, not {size} px'
    share = {side: in_forward[side] / wall[side] for side in wall}
    rows = [report(f'D-RISE vs vision-explanation-methods, Faster R-CNN R50-FPN {size} px '
                   f'(both), {k} targets, N={num_masks} (ours batch {batch}); masks/s '
                   f'{num_masks / t_ours:.2f} vs {num_masks / t_theirs:.2f}, ms per mask '
                   f'{1000 * t_ours / num_masks:.0f} vs {1000 * t_theirs / num_masks:.0f}; '
                   f'time in the forward {100 * share["ours"]:.1f} % vs '
                   f'{100 * share["theirs"]:.1f} %',
                   {'vision-explanation-methods': t_theirs, 'mmattnvis': t_ours}, ratio,
                   'speed-up >= 5', ratio >= 5)]
    # What batching buys on this device: the same masks at other batch sizes, paired with ours.
    for b in batches:
        t_ref, t_b, r = paired_median_times(ours, lambda b=b: ours(b), repeat=repeat,
                                            warmup=0)
        rows.append(report(f'D-RISE batch {batch} over batch {b}, same model and masks '
                           f'(speed-up of batching on this device)',
                           {f'batch {b}': t_b, f'batch {batch}': t_ref}, r, 'reported', None))
    return rows


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
