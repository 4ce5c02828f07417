"""D-RISE with a regression control variate: does it need fewer masks than centred Sobol?

The centred D-RISE map of a detection is ``Cov(w, M(x))`` over masks ``M`` (``w``: the
detection's similarity in the masked image). A control variate fits ``w`` on cheap features of
the mask (the mask averaged on a 6 x 8 grid of the image and on a 4 x 4 grid of the detection's
box; ridge regression on the masks seen so far) and replaces the features' sample covariance with
the pixels by its value over ``--free`` masks that need no forward pass::

    map = Cov_N(w, M(x)) + beta . (Cov_free(phi, M(x)) - Cov_N(phi, M(x)))

It is unbiased up to O(1 / N) (beta is fitted on the same masks) and removes the part of the
noise that is linear in the features. Per photo it prints, for centred Sobol (what
``--drise-masks auto`` uses) with and without the control variate: the Pearson with a reference
map (plain D-RISE, random masks seed 0 x ``--ref-masks`` plus seed 1 x ``--ref-extra``, centred;
independent of the Sobol masks) at several N, the R^2 of the fit, and where the ``auto``
stopping rule (tol 0.1 and 0.15, every 50 masks) stops on the same weights.

Masked forward passes are cached as in ``bench_drise_convergence.py`` (``--cache``): with that
benchmark's cache for ``dog`` this costs no forward pass; otherwise ~6000 forwards per photo.

    python benchmarks/bench_drise_control_variate.py --photos dog
"""
import argparse
import hashlib
import os
import os.path as osp
import statistics
import sys

import numpy as np
from bench_drise_convergence import COCO, load, prepare, replay_auto, weights

from common import ROOT, SHARED

sys.path.insert(0, ROOT)

EVAL = (96, 128)  # maps compared on this grid (masks are smooth: 16 x 16 cells)
CHECKS = (300, 500, 800, 1000, 1500, 2000)


def pooled(sampling, n, seed, shape):
    """``(n, EVAL)`` masks of a scheme, flattened, float64."""
    import torch
    import torch.nn.functional as F

    from mmattnvis.methods.drise_auto import make_masks
    masks = make_masks(n, 16, 0.5, shape, seed, sampling)
    parts = [F.adaptive_avg_pool2d(masks.batch(s, min(s + 250, n))[:, None], EVAL)[:, 0]
             for s in range(0, n, 250)]
    return torch.cat(parts).reshape(n, -1).double()


def centred(w, m):
    """Centred D-RISE maps ``(T, HW)`` of weights ``(T, N)`` and masks ``(N, HW)``."""
    return (w - w.mean(1, keepdim=True)) @ m / m.shape[0]


def features(m, box):
    """The mask on a 6 x 8 grid of the image and a 4 x 4 grid of ``box`` (EVAL pixels)."""
    import torch
    import torch.nn.functional as F
    img = m.reshape(-1, 1, *EVAL)
    x0, y0 = int(max(box[0], 0)), int(max(box[1], 0))
    x1 = int(min(max(np.ceil(box[2]), x0 + 1), EVAL[1]))
    y1 = int(min(max(np.ceil(box[3]), y0 + 1), EVAL[0]))
    return torch.cat([F.adaptive_avg_pool2d(img, (6, 8)).reshape(m.shape[0], -1),
                      F.adaptive_avg_pool2d(img[:, :, y0:y1, x0:x1], (4, 4))
                      .reshape(m.shape[0], -1)], 1)


class ControlVariate:
    """Per-target features, their covariance with the pixels over free masks, and the map."""

    def __init__(self, boxes, free, lam=0.3):
        self.boxes, self.lam = boxes, lam
        fc = free - free.mean(0)
        self.cross = []
        for box in boxes:
            p = features(free, box)
            self.cross.append((p - p.mean(0)).T @ fc / free.shape[0])

    def maps(self, w, m):
        """Maps ``(T, HW)`` and the fit's R^2 per target."""
        import torch
        out, r2 = [], []
        mc = m - m.mean(0)
        for t, box in enumerate(self.boxes):
            p = features(m, box)
            pc, wc = p - p.mean(0), w[t] - w[t].mean()
            gram = pc.T @ pc
            lam = self.lam * torch.trace(gram) / gram.shape[0]
            beta = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype),
                                      pc.T @ wc)
            out.append(wc @ m / m.shape[0] + beta @ (self.cross[t] - pc.T @ mc / m.shape[0]))
            r2.append(float(1 - ((wc - pc @ beta) ** 2).sum() / (wc ** 2).sum()))
        return torch.stack(out), r2


def replay(fn, w, m, tol, total):
    """N where the ``auto`` rule stops (``bench_drise_convergence.replay_auto`` on the maps at
    every 50 masks), and the maps there."""
    maps = [fn(w[:, :n], m[:n]).reshape(w.shape[0], *EVAL).numpy()
            for n in range(50, total + 1, 50)]
    n, k = replay_auto(maps, 50, tol)
    return n, (maps[k].reshape(w.shape[0], -1) if n else None)


def run_photo(name, model, args):
    import cv2
    import torch

    from mmattnvis.methods.drise_auto import pearson
    img = cv2.imread(osp.join(SHARED, 'images', f'{name}.jpg'))
    job = prepare(model, img, args.topk)
    region = job['region']
    shape = (region[1] - region[0], region[3] - region[2])
    key = f'coco_{hashlib.sha1(img.tobytes()).hexdigest()[:10]}_t{len(job["dets"])}'
    w_ref, _ = weights(job, 'random', args.ref_masks, 0, args.cache, key)
    w_extra, _ = weights(job, 'random', args.ref_extra, 1, args.cache, key)
    w_sob, _ = weights(job, 'sobol', args.masks, 1, args.cache, key)
    w_ref, w_extra, w_sob = (torch.as_tensor(w).double() for w in (w_ref, w_extra, w_sob))
    ref = centred(torch.cat([w_ref, w_extra], 1),
                  torch.cat([pooled('random', args.ref_masks, 0, shape),
                             pooled('random', args.ref_extra, 1, shape)]))
    m_sob = pooled('sobol', args.masks, 1, shape)
    scale = EVAL[0] / img.shape[0], EVAL[1] / img.shape[1]
    boxes = [np.asarray(d.bbox) * [scale[1], scale[0], scale[1], scale[0]] for d in job['dets']]
    cv = ControlVariate(boxes, pooled('random', args.free, 99, shape))
    methods = {'sobol centred': lambda w, m: centred(w, m),
               'sobol centred + control variate': lambda w, m: cv.maps(w, m)[0]}
    print(f'{name}: {len(boxes)} detections; fit R^2 at N = {args.masks}: '
          + ' '.join(f'{r:.2f}' for r in cv.maps(w_sob, m_sob)[1]))
    checks = [n for n in CHECKS if n <= args.masks]
    out = {}
    for label, fn in methods.items():
        curve = [statistics.median(pearson(a.numpy(), b.numpy())
                                   for a, b in zip(fn(w_sob[:, :n], m_sob[:n]), ref))
                 for n in checks]
        stops = {}
        for tol in (0.1, 0.15):
            n, maps = replay(fn, w_sob, m_sob, tol, args.masks)
            r = (statistics.median(pearson(a, b.numpy()) for a, b in zip(maps, ref))
                 if n else float('nan'))
            stops[tol] = (n, r)
        out[label] = stops
        print(f'  {label:32s} Pearson with the reference at N = '
              + '/'.join(map(str, checks)) + ': ' + ' / '.join(f'{x:.3f}' for x in curve)
              + '; auto stops ' + ', '.join(f'tol {t:g}: N {n} (Pearson {r:.3f})'
                                           for t, (n, r) in stops.items()))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--photos', nargs='+', default=['dog'])
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--masks', type=int, default=2000, help='Sobol masks per photo')
    parser.add_argument('--ref-masks', type=int, default=4000)
    parser.add_argument('--ref-extra', type=int, default=1500)
    parser.add_argument('--free', type=int, default=8000, help='masks without a forward pass')
    parser.add_argument('--cache', default='/tmp/drise_convergence')
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    import torch
    torch.set_grad_enabled(False)
    model = load(*COCO)
    for name in args.photos:
        run_photo(name, model, args)


if __name__ == '__main__':
    main()
