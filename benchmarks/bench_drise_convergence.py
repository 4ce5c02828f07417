"""D-RISE with fewer forward passes: masks needed per sampling scheme (counts, not seconds).

Per detection, the reference map is plain D-RISE (random masks, the paper's weighted sum) with
N = 4000 masks and seed 0. Each scheme's running map is checked every ``--step`` masks; the
masks it *needs* are the first N from which its Pearson with the reference stays >= 0.95 up to
the scheme's last mask (``--scheme-masks``). Two plain baselines:

* ``plain, same seed``: the reference's own first N masks (seed 0). It shares its masks with
  the reference, so it is favoured: the ratio against it is the conservative one.
* ``plain`` (seed 1): independent of the reference, as every other scheme (seed 1).

Schemes (``mmattnvis.methods.drise_auto``): ``random`` centred (each weight minus the running
mean), ``antithetic``, ``sobol`` and ``sobol-antithetic`` (all centred). The ratios printed are
medians over detections of N(plain) / N(scheme); a scheme that never reaches 0.95 counts as
needing more than its cap. ``auto`` rows replay the ``--drise-masks auto`` stopping rule on the
same weights: the N where it stops, the Pearson with the reference there, and that N times the
seconds per forward pass measured here (batch 4, ``OMP_NUM_THREADS`` as set; a loaded shared
machine unless said otherwise).

The masked forward passes are cached in ``--cache`` (weights per mask), so reruns and other
schemes or rules cost no forward.

    OMP_NUM_THREADS=1 python benchmarks/bench_drise_convergence.py --shapes 3
    OMP_NUM_THREADS=1 python benchmarks/bench_drise_convergence.py --shapes 0 --photos dog kite
"""
import argparse
import hashlib
import os
import os.path as osp
import statistics
import sys
import time

import numpy as np

from common import ROOT, SHARED

sys.path.insert(0, ROOT)

SHAPES = ('mmattnvis::shapes/yolov5_n_shapes.py', 'mmattnvis::shapes/yolov5_n_shapes.pth')
COCO = ('mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py',
        osp.join(SHARED, 'weights', 'yolov5n_mmyolo.pth'))
EVAL_SIZE = 128  # maps compared at this size (masks are smooth: cells of 16+ px)
TARGET = 0.95


def load(config, weights):
    from mmattnvis.apis import init_model
    return init_model(config, weights, device='cpu')


def prepare(model, img, topk, score_thr=0.3):
    """Targets, region, fill and predict of one image, as :class:`DRISE` builds them."""
    import torch

    from mmattnvis.apis import build_test_pipeline, prepare_batch
    from mmattnvis.methods.cam import detect
    from mmattnvis.methods.drise import (
        Predictions,
        content_region,
        mmdet_predict,
        preprocessor_fill,
    )
    from mmattnvis.render.geometry import ImageGeometry
    data = prepare_batch([img], build_test_pipeline(model.cfg), ['x.png'])
    det = detect(model, data, score_thr, topk)
    sample, dets = det.samples[0], det.detections[0]
    region = content_region(ImageGeometry.from_metainfo(sample.metainfo))
    targets = Predictions(torch.as_tensor(np.stack([d.bbox for d in dets])),
                          torch.as_tensor([d.score for d in dets]),
                          torch.as_tensor([d.label for d in dets]))
    return dict(image=det.inputs[0:1].detach(), region=region, targets=targets,
                predict=mmdet_predict(model, sample), fill=preprocessor_fill(model), dets=dets)


def masks_for(sampling, n, shape, seed, grid=16, prob=0.5):
    from mmattnvis.methods.drise_auto import make_masks
    return make_masks(n, grid, prob, shape, seed, sampling)


def weights(job, sampling, n, seed, cache, key, batch=4):
    """``(T, n)`` similarities of the targets in the masked images (cached), and seconds per
    forward pass (``nan`` when all came from the cache)."""
    from mmattnvis.methods.drise import fill_tensor, masked_weights
    path = osp.join(cache, f'{key}_{sampling}_s{seed}.npy')
    have = np.load(path) if osp.exists(path) else np.zeros((len(job['dets']), 0), np.float32)
    if have.shape[1] >= n:
        return have[:, :n], float('nan')
    region = job['region']
    shape = (region[1] - region[0], region[3] - region[2])
    masks = masks_for(sampling, n, shape, seed)
    fill = fill_tensor(job['fill'], job['image'])
    out = [have]
    t0, done = time.perf_counter(), 0
    for start in range(have.shape[1], n, batch):
        stop = min(start + batch, n)
        w = masked_weights(job['predict'], job['image'], region, job['targets'],
                           masks.batch(start, stop), fill)
        out.append(w.numpy().astype(np.float32))
        done += stop - start
        if done % 200 < batch:
            np.save(path, np.concatenate(out, 1))  # resumable
    per = (time.perf_counter() - t0) / max(done, 1)
    w = np.concatenate(out, 1)
    np.save(path, w)
    return w, per


def running_maps(sampling, seed, w, shape, step, center):
    """Running maps ``(K, T, s, s)`` at ``step, 2 step, ...`` masks (pooled to EVAL_SIZE)."""
    import torch
    import torch.nn.functional as F
    n = w.shape[1]
    masks = masks_for(sampling, n, shape, seed)
    size = (min(shape[0], EVAL_SIZE), min(shape[1], EVAL_SIZE))
    acc = torch.zeros(w.shape[0], *size, dtype=torch.float64)
    msum = torch.zeros(*size, dtype=torch.float64)
    wsum = torch.zeros(w.shape[0], dtype=torch.float64)
    wt = torch.as_tensor(w, dtype=torch.float64)
    out = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        m = F.adaptive_avg_pool2d(masks.batch(start, stop)[:, None], size)[:, 0].double()
        acc += torch.einsum('tb,bhw->thw', wt[:, start:stop], m)
        msum += m.sum(0)
        wsum += wt[:, start:stop].sum(1)
        out.append((acc - (wsum / stop)[:, None, None] * msum if center else acc).numpy().copy())
    return np.stack(out)


def needed(curve, step):
    """First N from which ``curve`` (Pearson per checkpoint) stays >= TARGET; None if never."""
    ok = np.asarray(curve) >= TARGET
    if not ok[-1]:
        return None
    k = len(ok) - 1
    while k > 0 and ok[k - 1]:
        k -= 1
    return (k + 1) * step


def replay_auto(maps, step, tol, check_every=50):
    """N where the ``auto`` rule stops on these running maps (every ``check_every`` masks)."""
    import torch
    import torch.nn.functional as F

    from mmattnvis.methods.drise_auto import SNAPSHOT_SIZE, ConvergenceMonitor
    mon = ConvergenceMonitor(tol, min_masks=2 * check_every)
    every = check_every // step
    for k in range(every - 1, len(maps), every):
        t = torch.as_tensor(maps[k])
        size = (min(t.shape[-2], SNAPSHOT_SIZE), min(t.shape[-1], SNAPSHOT_SIZE))
        snap = F.adaptive_avg_pool2d(t[:, None], size)[:, 0].numpy()
        if mon.update((k + 1) * step, snap):
            return (k + 1) * step, k
    return None, len(maps) - 1


def run_image(name, model, img, args, cache, key_model):
    from mmattnvis.methods.drise_auto import pearson
    job = prepare(model, img, args.topk)
    if not job['dets']:
        print(f'{name}: no detection')
        return []
    region = job['region']
    shape = (region[1] - region[0], region[3] - region[2])
    key = hashlib.sha1(img.tobytes()).hexdigest()[:10]
    key = f'{key_model}_{key}_t{len(job["dets"])}'
    step = args.step
    w_ref, per_ref = weights(job, 'random', args.ref_masks, 0, cache, key)
    ref_maps = running_maps('random', 0, w_ref, shape, step, center=False)
    ref = ref_maps[-1]
    per_forward = [p for p in [per_ref] if p == p]

    def curve(maps):
        return np.array([[pearson(m[t], ref[t]) for t in range(len(ref))] for m in maps])

    curves = {'plain, same seed': curve(ref_maps)}
    autos = {}
    schemes = [('plain', 'random', False, args.plain_masks)] + [
        (f'{s} centred', s, True, args.scheme_masks) for s in args.schemes]
    for label, sampling, center, n in schemes:
        w, per = weights(job, sampling, n, 1, cache, key)
        if per == per:
            per_forward.append(per)
        maps = running_maps(sampling, 1, w, shape, step, center)
        curves[label] = curve(maps)
        for tol in args.tols:
            stop, k = replay_auto(maps, step, tol)
            autos[(label, tol)] = (stop, curves[label][k].min())
    sec = statistics.median(per_forward) if per_forward else float('nan')
    rows = []
    for t, d in enumerate(job['dets']):
        row = dict(image=name, det=f'{d.label}:{d.score:.2f}', sec=sec)
        for label, c in curves.items():
            row[label] = needed(c[:, t], step)
        rows.append(row)
    print(f'{name}: {len(rows)} detections, {1000 * sec:.0f} ms per forward (batch 4)')
    for label, c in curves.items():
        print(f'  {label:26s} needs {[r[label] for r in rows]}; Pearson at 200/500/1000: '
              + ' / '.join(f'{np.median(c[min(n // step, len(c)) - 1]):.3f}'
                           for n in (200, 500, 1000)))
    for (label, tol), (stop, r) in autos.items():
        print(f'  auto {label:21s} tol {tol:g}: stops at {stop} (worst Pearson with the '
              f'reference there {r:.3f}; {stop * sec if stop else float("nan"):.0f} s)')
    for row in rows:
        row['auto'] = {f'{lb} tol {tol:g}': v for (lb, tol), v in autos.items()}
    return rows


def summary(rows, labels, cap):
    print(f'\n{len(rows)} detections; median over detections of N(plain) / N(scheme) '
          f'(a scheme that never reaches {TARGET}: N > its cap)')
    for base in ('plain, same seed', 'plain'):
        for label in labels:
            if label in ('plain, same seed', 'plain'):
                continue
            ratios = []
            for r in rows:
                nb = r[base] if r[base] is not None else cap[base] * 1.0001
                ns = r[label] if r[label] is not None else cap[label] * 1.0001
                ratios.append(nb / ns)
            reached = sum(r[label] is not None for r in rows)
            print(f'  {base:17s} / {label:26s}: median ratio {statistics.median(ratios):.2f} '
                  f'(min {min(ratios):.2f}), scheme reached {TARGET} on {reached}/{len(rows)}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shapes', type=int, default=3, help='shapes images (seeds 11, 12, ..)')
    parser.add_argument('--photos', nargs='*', default=[], help='shared photos, e.g. dog kite')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--ref-masks', type=int, default=4000)
    parser.add_argument('--plain-masks', type=int, default=4000)
    parser.add_argument('--scheme-masks', type=int, default=1500)
    parser.add_argument('--schemes', nargs='+',
                        default=['random', 'antithetic', 'sobol', 'sobol-antithetic'])
    parser.add_argument('--tols', type=float, nargs='+', default=[0.02])
    parser.add_argument('--step', type=int, default=25)
    parser.add_argument('--cache', default='/tmp/drise_convergence')
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    import torch
    torch.set_grad_enabled(False)
    print(f'torch threads {torch.get_num_threads()}, load average '
          f'{" ".join(f"{x:.1f}" for x in os.getloadavg())}')
    rows = []
    if args.shapes:
        from mmattnvis.datasets.shapes import make_shapes_image
        model = load(*SHAPES)
        for i in range(args.shapes):
            img, _ = make_shapes_image(np.random.default_rng(11 + i))
            rows += run_image(f'shapes#{11 + i}', model, img, args, args.cache, 'shapes')
    if args.photos:
        import cv2
        model = load(*COCO)
        for name in args.photos:
            img = cv2.imread(osp.join(SHARED, 'images', f'{name}.jpg'))
            rows += run_image(name, model, img, args, args.cache, 'coco')
    labels = ['plain, same seed', 'plain'] + [f'{s} centred' for s in args.schemes]
    cap = {lb: args.scheme_masks for lb in labels}
    cap.update({'plain, same seed': args.ref_masks, 'plain': args.plain_masks})
    for group in ('shapes', 'photo'):
        sub = [r for r in rows if r['image'].startswith('shapes') == (group == 'shapes')]
        if sub:
            print(f'\n== {group}')
            summary(sub, labels, cap)


if __name__ == '__main__':
    main()
