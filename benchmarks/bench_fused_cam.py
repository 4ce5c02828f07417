"""Fused multi-layer CAM maps on the COCO YOLOv5-n and the shared photos (issue 26).

At ``neck`` every gradient x activation map of YOLOv5 is one anchor cell (its head is a 1x1
convolution). This script measures, per photo and detection (score > 0.3, top 5):

* effective area: the share of the detection's box where the map is >= half its maximum
  (a one-cell map scores ~1 %; the goal is >= 10 %), and whether the peak is inside the box;
* optionally (``--insertion``) insertion and deletion AUC of the detection's D-RISE similarity
  (``--steps`` + 1 forwards each per map);
* the cost of the recommended map (``--method auto``): counted forward and backward passes and
  seconds per detection, against D-RISE with N = 1000 masks, whose cost is N forwards per image
  (shared by its detections); its seconds are estimated as N x the measured seconds of one
  forward (D-RISE's forward is ~98 % of its cost, issue 26), not run.

``--sweep`` prints the table behind the recommendation: every method x layer set x fusion x
pooling (none, or 16 input pixels: ``--pool-stride``). The per-layer maps of a method come from
one run on all candidate layers (one forward, one backward per detection), and the layer sets
are fused from them (on the original image's grid, the pool stride scaled to it).

    python benchmarks/bench_fused_cam.py [--sweep] [--insertion] [--steps 10]

Timings on a shared (loaded) machine are indicative only; the forward counts are exact.
"""
import argparse
import glob
import itertools
import os.path as osp
import time

import numpy as np
import torch

from common import SHARED

CONFIG = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
WEIGHTS = osp.join(SHARED, 'weights', 'yolov5n_mmyolo.pth')
METHODS = ('odam', 'hirescam', 'layercam', 'gradcam', 'eigengradcam')
LAYERS = ('backbone.stage1', 'backbone.stage2', 'backbone.stage3', 'backbone.stage4', 'neck')
SETS = {
    'neck': ['neck'],
    'stage4': ['backbone.stage4'],
    'stage3': ['backbone.stage3'],
    'stage2': ['backbone.stage2'],
    'stages2-4': ['backbone.stage2', 'backbone.stage3', 'backbone.stage4'],
    'stages2-4+neck': ['backbone.stage2', 'backbone.stage3', 'backbone.stage4', 'neck'],
    'stages3-4+neck': ['backbone.stage3', 'backbone.stage4', 'neck'],
    'stage3+neck': ['backbone.stage3', 'neck'],
    'stages1-4+neck': list(LAYERS),
}


def effective_area(sal: np.ndarray, box) -> float:
    """Share of the box's pixels where the map is >= half the map's maximum."""
    from mmattnvis.render.geometry import box_slices
    rs, cs = box_slices(box, sal.shape)
    inside = sal[rs, cs]
    if not inside.size or sal.max() <= 0:
        return 0.0
    return float((inside >= 0.5 * sal.max()).mean())


def load():
    from mmattnvis.apis import build_test_pipeline, init_model
    model = init_model(CONFIG, WEIGHTS, device='cpu')
    pipeline = build_test_pipeline(model.cfg)
    import cv2
    images = {osp.basename(p): cv2.imread(p)
              for p in sorted(glob.glob(osp.join(SHARED, 'images', '*.jpg')))}
    return model, pipeline, images


def detected_for(model, pipeline, img, name):
    from mmattnvis.apis import prepare_batch
    from mmattnvis.methods.cam import detect
    return detect(model, prepare_batch([img], pipeline, [name]), 0.3, 5)


class Counter:
    """Counts the model's forwards (a hook on the backbone) and backward passes
    (``torch.autograd.grad`` calls and ``Tensor.backward``)."""

    def __init__(self, model) -> None:
        self.model = model
        self.forwards = 0
        self.backwards = 0

    def __enter__(self):
        self.handle = self.model.backbone.register_forward_hook(self._fwd)
        self._grad = torch.autograd.grad

        def grad(*a, **k):
            self.backwards += 1
            return self._grad(*a, **k)

        torch.autograd.grad = grad
        return self

    def _fwd(self, *_):
        self.forwards += 1

    def __exit__(self, *exc):
        self.handle.remove()
        torch.autograd.grad = self._grad


def insertion_deletion(model, pipeline, img, det, sal, steps):
    from mmattnvis.apis.faithfulness_runner import DetectionScorer
    from mmattnvis.metrics import perturbation_auc
    score = DetectionScorer(model, pipeline, batch_size=4).for_detection(det)
    rng = np.random.default_rng(0)
    ins, _ = perturbation_auc(img, sal, score, 'insertion', steps, rng=rng)
    dele, _ = perturbation_auc(img, sal, score, 'deletion', steps, rng=rng)
    return ins, dele


def sweep(model, pipeline, images, insertion: bool, steps: int) -> None:
    from mmattnvis.methods.cam import fuse_layer_maps
    from mmattnvis.methods.explainers import build_explainer
    from mmattnvis.metrics import pointing_game, random_saliency
    rows = {}  # (method, set, fusion) -> list of (area, hit, ins, del)
    maps_for_insertion = {}
    for name, img in images.items():
        detected = detected_for(model, pipeline, img, name)
        dets = detected.detections[0]
        scale = float(np.mean(detected.samples[0].metainfo['scale_factor']))
        for method in METHODS:
            cam = build_explainer(method, list(LAYERS), keep_layer_maps=True)
            res = cam.explain(model, detected=detected)
            for d, per_layer in zip(dets, res.layer_maps[0]):
                for set_name, layers in SETS.items():
                    multi = len(layers) > 1
                    for fusion, pool in itertools.product(
                            ('mean', 'max', 'gmean') if multi else ('-', ),
                            (0, 16) if multi else (0, )):
                        fused = fuse_layer_maps([per_layer[n][None] for n in layers],
                                                'mean' if fusion == '-' else fusion,
                                                round(pool / scale))[0]
                        key = (method, set_name, fusion + (f'/{pool}' if pool else ''))
                        rows.setdefault(key, []).append(
                            [effective_area(fused, d.bbox), pointing_game(fused, d.bbox)])
                        maps_for_insertion[(key, name, d.rank)] = (img, d, fused)
        rng = np.random.default_rng(0)
        for d in dets:
            sal = random_saliency(img.shape[:2], rng)
            rows.setdefault(('random', '-', '-'), []).append(
                [effective_area(sal, d.bbox), pointing_game(sal, d.bbox)])
            maps_for_insertion[(('random', '-', '-'), name, d.rank)] = (img, d, sal)
    print(f'{"method":<13} {"layers":<16} {"fusion":<8} {"eff.area":>8} {">=10%":>6} '
          f'{"PG":>6}  (mean over {len(next(iter(rows.values())))} detections)')
    # the random map has the largest effective area: rank by the share of boxes >= 10 %, then
    # the pointing game, then the mean area
    ranked = sorted(rows.items(), key=lambda kv: tuple(-v for v in (
        np.mean([r[0] >= 0.1 for r in kv[1]]), np.mean([r[1] for r in kv[1]]),
        np.mean([r[0] for r in kv[1]]))))
    for (method, set_name, fusion), vals in ranked:
        a = np.array(vals, dtype=float)
        print(f'{method:<13} {set_name:<16} {fusion:<8} {a[:, 0].mean():8.3f} '
              f'{(a[:, 0] >= 0.1).mean():6.0%} {a[:, 1].mean():6.0%}')
    if not insertion:
        return
    picks = [('odam', 'neck', '-'), ('random', '-', '-')] + [k for k, _ in ranked[:4]]
    print(f'\ninsertion / deletion AUC ({steps} steps; higher / lower is better)')
    for key in dict.fromkeys(picks):
        ins, dele = [], []
        for (k, name, rank), (img, d, sal) in maps_for_insertion.items():
            if k == key:
                i, dl = insertion_deletion(model, pipeline, img, d, sal, steps)
                ins.append(i)
                dele.append(dl)
        print(f'{" ".join(key):<36} insertion {np.mean(ins):.3f} deletion {np.mean(dele):.3f} '
              f'OA {np.mean(ins) - np.mean(dele):.3f}')


def recommended(model, pipeline, images, insertion: bool, steps: int,
                drise_masks: int = 1000) -> None:
    from mmattnvis.methods.auto import recommend
    from mmattnvis.methods.explainers import build_explainer
    from mmattnvis.metrics import pointing_game
    rec = recommend(model)
    print(rec.describe())
    cam = build_explainer(rec.method, rec.layers, fusion=rec.fusion, pool_stride=rec.pool_stride)
    areas = []
    for name, img in images.items():
        detected = detected_for(model, pipeline, img, name)
        dets = detected.detections[0]
        with Counter(model) as count:
            t0 = time.perf_counter()
            res = cam.explain(model, detected=detected)
            t_map = time.perf_counter() - t0
        x = detected.inputs[:1]
        with torch.no_grad():
            model(x, mode='tensor')  # warm
            t0 = time.perf_counter()
            for _ in range(3):
                model(x, mode='tensor')
            t_fwd = (time.perf_counter() - t0) / 3
        n = max(1, len(dets))
        t_drise = drise_masks * t_fwd / n
        print(f'{name}: {len(dets)} detections; map: {count.forwards} forward(s), '
              f'{count.backwards} backward(s) (incl. the image-level map) for all; '
              f'D-RISE N={drise_masks}: {drise_masks} forwards. '
              f'Seconds per detection: map {t_map / n:.3f}, D-RISE ~{t_drise:.1f} '
              f'(N x {t_fwd:.3f} s per forward) -> 1/{t_drise / (t_map / n):.0f}')
        for d, m in zip(dets, res.maps[0]):
            area = effective_area(m.data, d.bbox)
            areas.append(area)
            extra = ''
            if insertion:
                ins, dele = insertion_deletion(model, pipeline, img, d, m.data, steps)
                extra = f' insertion {ins:.3f} deletion {dele:.3f} OA {ins - dele:.3f}'
            print(f'  #{d.rank} {d.label} {d.score:.2f}: effective area {area:.1%}, peak in box '
                  f'{pointing_game(m.data, d.bbox)}{extra}')
    print(f'effective area >= 10 % for {np.mean(np.array(areas) >= 0.1):.0%} of '
          f'{len(areas)} detections (min {min(areas):.1%}, median {np.median(areas):.1%})')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sweep', action='store_true', help='method x layers x fusion table')
    parser.add_argument('--insertion', action='store_true', help='add insertion / deletion')
    parser.add_argument('--steps', type=int, default=10, help='insertion / deletion steps')
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not osp.isfile(WEIGHTS):
        raise SystemExit(f'{WEIGHTS} is absent')
    model, pipeline, images = load()
    if args.sweep:
        sweep(model, pipeline, images, args.insertion, args.steps)
    else:
        recommended(model, pipeline, images, args.insertion, args.steps)
