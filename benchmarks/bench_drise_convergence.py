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
    targets = Predictions.from_detections(dets)
    return dict(image=det.inputs[0:1].detach(), region=region, targets=targets,
                predict=mmdet_predict(model, sample), fill=preprocessor_fill(model), dets=dets,
                sample=sample)


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


def matching(curve, level, step):
    """First N from which ``curve`` stays >= ``level``; None if never."""
    ok = np.asarray(curve) >= level
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
    # The reference's own noise: its two halves (masks 0-1999, 2000-3999) are independent
    # estimates; Spearman-Brown gives the Pearson of the full reference with its limit.
    half = args.ref_masks // 2
    first = running_maps('random', 0, w_ref[:, :half], shape, half, center=False)[-1]
    second = (ref - first)
    rel = []
    for t in range(len(ref)):
        r = max(pearson(first[t], second[t]), 1e-6)
        rel.append(float(np.sqrt(2 * r / (1 + r))))
    autos = {}
    schemes = [('plain', 'random', False, args.plain_masks)] + [
        (f'{s} centred', s, True, args.plain_masks if s == 'random' else args.scheme_masks)
        for s in args.schemes]
    for label, sampling, center, n in schemes:
        w, per = weights(job, sampling, n, 1, cache, key)
        if per == per:
            per_forward.append(per)
        maps = running_maps(sampling, 1, w, shape, step, center)
        curves[label] = curve(maps)
        for tol in args.tols:
            stop, k = replay_auto(maps, step, tol)
            autos[(label, tol)] = (stop, curves[label][k])
    sec = statistics.median(per_forward) if per_forward else float('nan')
    rows = []
    for t, d in enumerate(job['dets']):
        row = dict(image=name, det=f'{d.label}:{d.score:.2f}', sec=sec, ref_rel=rel[t])
        for label, c in curves.items():
            row[label] = needed(c[:, t], step)
        # Equal quality: the masks each scheme needs to stay at plain's Pearson at its cap.
        level = curves['plain'][-1, t]
        row['match'] = {label: matching(c[:, t], level, step) for label, c in curves.items()
                        if label not in ('plain', 'plain, same seed')}
        row['match_level'] = level
        rows.append(row)
    print(f'{name}: {len(rows)} detections, {1000 * sec:.0f} ms per forward (batch 4); '
          f'Pearson of the N = {args.ref_masks} reference with its limit (split halves, '
          f'Spearman-Brown) {" ".join(f"{r:.3f}" for r in rel)}')
    for label, c in curves.items():
        print(f'  {label:26s} needs {[r[label] for r in rows]}; Pearson at 200/500/1000: '
              + ' / '.join(f'{np.median(c[min(n // step, len(c)) - 1]):.3f}'
                           for n in (200, 500, 1000)))
    for (label, tol), (stop, r) in autos.items():
        print(f'  auto {label:21s} tol {tol:g}: stops at {stop} (Pearson with the '
              f'reference there {" ".join(f"{x:.3f}" for x in r)}; '
              f'{stop * sec if stop else float("nan"):.0f} s)')
    for t, row in enumerate(rows):
        row['auto'] = {f'{lb} tol {tol:g}': (v[0], v[1][t]) for (lb, tol), v in autos.items()}
    return rows


def summary(rows, labels, cap):
    print(f'\n{len(rows)} detections. Reference vs its limit (split-half estimate): median '
          f'{statistics.median(r["ref_rel"] for r in rows):.3f}, min '
          f'{min(r["ref_rel"] for r in rows):.3f}')
    for label in labels:
        reached = [r[label] for r in rows if r[label] is not None]
        print(f'  {label:26s} reaches Pearson {TARGET} with the reference on {len(reached)}/'
              f'{len(rows)} detections within {cap[label]} masks'
              + (f' (median N {statistics.median(reached):.0f})' if reached else ''))
    base = cap['plain']
    print(f'Equal quality: masks needed to stay at the Pearson plain D-RISE (seed 1) has at '
          f'N = {base} (median level {statistics.median(r["match_level"] for r in rows):.3f}); '
          f'ratio {base} / N, median over detections (a scheme that does not reach it within '
          f'its cap counts as its cap):')
    for label in rows[0]['match']:
        ns = [r['match'][label] or cap[label] for r in rows]
        reached = sum(r['match'][label] is not None for r in rows)
        ratios = [base / n for n in ns]
        print(f'  {label:26s} median N {statistics.median(ns):.0f}, ratio median '
              f'{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}), '
              f'reached on {reached}/{len(rows)}')
    for key in rows[0]['auto']:
        stops = [r['auto'][key][0] for r in rows]
        worst = [r['auto'][key][1] for r in rows]
        secs = [s * r['sec'] for s, r in zip(stops, rows) if s]
        print(f'  auto {key:34s}: stops at N {sorted(set(stops), key=str)}; Pearson with the '
              f'reference there median {statistics.median(worst):.3f}'
              + (f'; {max(secs):.0f} s at most (s per forward measured here x N)' if secs
                 else ''))


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
    parser.add_argument('--tols', type=float, nargs='+', default=[0.02, 0.05, 0.1])
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
    cap['random centred'] = args.plain_masks  # the same masks and passes as plain
    cap.update({'plain, same seed': args.ref_masks, 'plain': args.plain_masks})
    for group in ('shapes', 'photo'):
        sub = [r for r in rows if r['image'].startswith('shapes') == (group == 'shapes')]
        if sub:
            print(f'\n== {group}')
            summary(sub, labels, cap)


if __name__ == '__main__':
    main()
