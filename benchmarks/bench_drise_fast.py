"""D-RISE's masked passes on the inference copy (``--drise-fast``) and the CPU batch size.

Per model and image: milliseconds per masked image of the whole D-RISE step (mask, blend,
``predict``, similarity) for the model as it is and for the checked inference copy
(:mod:`mmattnvis.methods.drise_fast`), ``copy-fold`` with BatchNorm folded and channels-last
only, ``copy`` also with MMYOLO's post-processing of only the kept priors (what
``--drise-fast`` runs), at batch sizes 1, 2, 3 and 4, measured in interleaved rounds (median)
so that a slow phase of the machine hits every row alike. It prints each row's speed-up over
the model as it is at batch 4 (the CPU default before this benchmark), and the largest
difference of a D-RISE weight between each copy and the model over the masked images (a copy
must not change what D-RISE measures).

    python benchmarks/bench_drise_fast.py                    # COCO YOLOv5-n on dog.jpg
    python benchmarks/bench_drise_fast.py --model shapes-dino shapes-yolov5

Run it alone on the machine (2 threads).
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import numpy as np
from bench_drise_convergence import prepare

from common import ROOT, SHARED

sys.path.insert(0, ROOT)

MODELS = {
    'coco-yolov5': ('mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py',
                    osp.join(SHARED, 'weights', 'yolov5n_mmyolo.pth')),
    'shapes-yolov5': ('mmattnvis::shapes/yolov5_n_shapes.py',
                      'mmattnvis::shapes/yolov5_n_shapes.pth'),
    'shapes-dino': ('mmattnvis::shapes/dino_slim_shapes.py',
                    'mmattnvis::shapes/dino_slim_shapes.pth'),
}


def image_for(name: str, photo: str):
    import cv2
    if name.startswith('coco'):
        return cv2.imread(osp.join(SHARED, 'images', f'{photo}.jpg'))
    from mmattnvis.datasets.shapes import make_shapes_image
    return make_shapes_image(np.random.default_rng(3))[0]


def copy_predictor(model, job, kept: bool = True):
    """The checked copy's ``predict`` for ``job``'s image and its info; ``kept=False`` takes the
    kept-priors post-processing off the copy's heads (MMYOLO's own method runs)."""
    from mmattnvis.methods.drise_fast import FastPredictor
    fast = FastPredictor(model, job['image'].device, print)
    if not kept and fast.copy is not None:
        for module in fast.copy.modules():
            vars(module).pop('predict_by_feat', None)
    return fast.for_image(job['sample'], job['image'], job['targets'])


def setup(name: str, photo: str, n: int):
    """``bench_drise_convergence.prepare``'s job of one image plus the masks and the checked
    copies' ``predict`` beside the model's."""
    from mmattnvis.apis import init_model
    from mmattnvis.methods.drise import fill_tensor
    from mmattnvis.methods.drise_auto import make_masks
    model = init_model(*MODELS[name], device='cpu')
    job = prepare(model, image_for(name, photo), 5)
    region = job['region']
    shape = (region[1] - region[0], region[3] - region[2])
    t0 = time.perf_counter()
    fast, info = copy_predictor(model, job)
    prep = time.perf_counter() - t0
    predict = {'model': job['predict'], 'copy-fold': copy_predictor(model, job, False)[0],
               'copy': fast}
    return dict(job, fill=fill_tensor(job['fill'], job['image']), info=info, prep=prep,
                masks=make_masks(n, 16, 0.5, shape, 0, 'sobol'), dets=len(job['dets']),
                predict=predict)


def weights(job, which: str, n: int, batch: int):
    """``(T, n)`` D-RISE weights of the first ``n`` masks."""
    import torch

    from mmattnvis.methods.drise import masked_weights
    out = []
    for s in range(0, n, batch):
        m = job['masks'].batch(s, min(s + batch, n))
        out.append(masked_weights(job['predict'][which], job['image'], job['region'],
                                  job['targets'], m, job['fill']))
    return torch.cat(out, 1)


def main() -> None:
    import torch
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', nargs='+', default=['coco-yolov5'], choices=sorted(MODELS))
    parser.add_argument('--photo', default='dog')
    parser.add_argument('--masks', type=int, default=48, help='masked images per measurement')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 2, 3, 4])
    args = parser.parse_args()
    torch.set_num_threads(2)
    for name in args.model:
        job = setup(name, args.photo, args.masks)
        plain = weights(job, 'model', args.masks, 4)
        gaps = {w: float((weights(job, w, args.masks, 4) - plain).abs().max())
                for w in job['predict'] if w != 'model'}
        print(f'\n{name} ({args.photo if name.startswith("coco") else "shapes image"}, '
              f'{job["dets"]} detections): copy {job["info"]}, made and checked in '
              f'{job["prep"]:.2f} s; largest weight difference copy - model over '
              f'{args.masks} masked images: '
              + ', '.join(f'{w} {g:.2e}' for w, g in gaps.items()))
        rows = {(w, b): [] for w in job['predict'] for b in args.batches}
        for key in rows:  # warm-up
            weights(job, key[0], key[1] * 2, key[1])
        for _ in range(args.rounds):
            for (which, batch), times in rows.items():
                t0 = time.perf_counter()
                weights(job, which, args.masks, batch)
                times.append((time.perf_counter() - t0) / args.masks)
        base = statistics.median(rows[('model', 4)]) if ('model', 4) in rows else None
        print('| predict | batch | ms per masked image (median) | speed-up over model @ 4 |')
        print('| --- | --- | --- | --- |')
        for (which, batch), times in rows.items():
            ms = statistics.median(times) * 1e3
            ratio = f'{base * 1e3 / ms:.2f}x' if base else '-'
            print(f'| {which} | {batch} | {ms:.1f} | {ratio} |')


if __name__ == '__main__':
    main()
