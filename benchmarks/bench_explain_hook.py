"""Per-image cost of ``ExplainHook`` against the CLI's Run on the same images and options.

Shipped shapes YOLOv5-n, ``N`` generated shapes images, batch size 1, a task (default ``drise``
with 100 masks; ``--task cam`` for Grad-CAM). Hook cost per image = (``runner.test()`` with the
hook - ``runner.test()`` without it) / N: the explainer's extra work inside the runner. CLI cost
per image = the CLI's own image loop (:func:`~mmattnvis.apis.image_loop.run_image_loop` over
``Run.run_images``, what ``tools/cam_vis.py ... --save-results DIR`` runs) over the same images,
after one warm-up image (the runner's first batch warms the model up too). Records saved on both
sides, no figures. Alternating repeats, medians. Prints the ratio (goal <= 1.2).

    python benchmarks/bench_explain_hook.py [--task drise] [--images 24] [--masks 100] [--repeats 3]
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

import cv2

from common import ROOT, runner_test_time

sys.path.insert(0, osp.join(ROOT, 'tests'))



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--task', default='drise', choices=['drise', 'cam', 'odam'])
    parser.add_argument('--images', type=int, default=24)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--masks', type=int, default=100)
    args = parser.parse_args()
    from mmattnvis.apis import collect_images, init_model
    from mmattnvis.apis.image_loop import run_image_loop
    from mmattnvis.apis.run_sinks import RunSinks
    from mmattnvis.apis.tasks import build_run
    from mmattnvis.utils.package_data import shipped_model

    from runner_utils import make_dataset, runner_cfg
    config, weights = shipped_model('yolov5_n_shapes')
    fields = dict(topk=2, target_layers=['neck'])
    if args.task == 'drise':
        fields.update(drise_masks=args.masks, drise_grid=8, drise_batch=8)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(osp.join(tmp, 'data'), num_images=args.images, seed=4)
        cfg = runner_cfg(config, *data, osp.join(tmp, 'cli'), batch_size=1, scale=160)
        model = init_model(cfg, weights, device='cpu')
        run = build_run(args.task, model, **fields)
        images = collect_images(osp.join(data[0], 'images'))
        run.run_images([cv2.imread(images[0])], images[:1])  # warm-up, as the runner's first
        times: dict = {'plain': [], 'hook': [], 'cli': []}
        for r in range(args.repeats):
            for name, hooks in (('plain', []), ('hook', [dict(
                    type='mmattnvis.ExplainHook', task=args.task, interval=1, draw=False,
                    results_dir='res', resume=False, **fields)])):
                cfg = runner_cfg(config, *data, osp.join(tmp, f'{name}{r}'), custom_hooks=hooks,
                                 batch_size=1, scale=160)
                cfg.load_from = weights
                times[name].append(runner_test_time(cfg))
            sinks = RunSinks(args.task, results_dir=osp.join(tmp, f'cli{r}'))
            t0 = time.perf_counter()
            run_image_loop(images, data[0], run.run_images, sinks=sinks)
            times['cli'].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    hook = (med['hook'] - med['plain']) / args.images
    cli = med['cli'] / args.images
    print(f'task={args.task} images={args.images}, median of {args.repeats}: hook '
          f'{hook * 1000:.1f} ms/image, CLI loop {cli * 1000:.1f} ms/image, ratio hook/CLI '
          f'{hook / cli:.2f} (goal <= 1.2)')

if __name__ == '__main__':
    main()
