"""Issue 26's faithfulness tables (``docs/faithfulness/trust/``) and the goals' ratios.

Per model (shapes YOLOv5-n, RetinaNet and DINO on held-out shapes images, the COCO YOLOv5-n on
the shared photos): every gradient method (the Grad-CAM family and ODAM) at every layer choice
(single layers, a fused set and, where ``mmattnvis.methods.auto`` exists, the ``auto`` set), the
random map, D-RISE at the reference N, at the goal's comparison N and, for its sanity check, at a
small N. Columns: pointing game, energy pointing game (in the object's mask on shapes, in the box on
the photos), Mask-IoU (shapes), deletion, insertion, OA, sanity check, effective area, seconds per
detection. Then, per model, the goal's ratios for the recommended map against D-RISE at the
comparison N on the same detections::

    OMP_NUM_THREADS=1 python benchmarks/faithfulness_tables.py \\
        [--models shapes_yolov5_n shapes_retinanet shapes_dino photos_yolov5_n] \\
        [--images 6] [--topk 2] [--steps 10] [--drise-ref 4000] [--drise-cmp 1000] \\
        [--drise-sanity 300] [--out docs/faithfulness/trust]

Each model writes ``OUT/<model>/faithfulness.{md,csv}`` and ``faithfulness_detections.csv``
(``tools/eval_faithfulness.py``'s files); ``OUT/<model>/goal.json`` holds the ratios and
``OUT/tables.md`` every model's summary (``docs/faithfulness/trust/README.md`` quotes it).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from common import ROOT, SHARED

sys.path.insert(0, ROOT)

GRADIENT_METHODS = ('gradcam', 'gradcam++', 'xgradcam', 'eigencam', 'eigengradcam',
                    'segeigencam', 'layercam', 'hirescam', 'odam')
YOLO_CFG = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
MODELS: Dict[str, dict] = {
    'shapes_yolov5_n': dict(
        title='YOLOv5-n (shapes)', config='configs/shapes/yolov5_n_shapes.py',
        checkpoint='models/shapes/yolov5_n_shapes/weights.pth', data='shapes', grid=8,
        layers=[('neck', ), ('backbone.stage3', ),
                ('backbone.stage2', 'backbone.stage3', 'neck')]),
    'shapes_retinanet': dict(
        title='RetinaNet R18w32-FPN (shapes)',
        config='configs/shapes/retinanet_r18w32_fpn_shapes.py',
        checkpoint='models/shapes/retinanet_r18w32_fpn_shapes/weights.pth', data='shapes',
        grid=8, layers=[('neck', ), ('backbone.layer3', ),
                        ('backbone.layer2', 'backbone.layer3', 'neck')]),
    'shapes_dino': dict(
        title='DINO slim (shapes)', config='configs/shapes/dino_slim_shapes.py',
        checkpoint='models/shapes/dino_slim_shapes/weights.pth', data='shapes', grid=8,
        layers=[('neck', ), ('backbone.layer3', ), ('backbone.layer3', 'backbone.layer4',
                                                     'neck')]),
    'photos_yolov5_n': dict(
        title='COCO YOLOv5-n (shared photos)', config=YOLO_CFG,
        checkpoint=osp.join(SHARED, 'weights', 'yolov5n_mmyolo.pth'),
        data=osp.join(SHARED, 'images'), grid=16,
        layers=[('neck', ), ('backbone.stage3', ),
                ('backbone.stage2', 'backbone.stage3', 'neck')]),
}


def layer_label(layers: Sequence[str]) -> str:
    return '+'.join(layers)


def layer_choices(model, spec: dict) -> List[Tuple[str, Tuple[str, ...]]]:
    """The model's layer choices, plus the ``auto`` set when the package recommends one."""
    out = [(layer_label(c), tuple(c)) for c in spec['layers']]
    try:
        from mmattnvis.methods.auto import auto_layers
    except ImportError:
        return out
    auto = tuple(auto_layers(model))
    if auto and auto not in [c for _, c in out]:
        out.append(('auto', auto))
    return out


def recommended(model) -> Optional[Tuple[str, Tuple[str, ...], Optional[str], int]]:
    """``(method, layers, fusion, pool stride)`` the package recommends for the model."""
    try:
        from mmattnvis.methods.auto import recommend
    except ImportError:
        return None
    rec = recommend(model)
    return rec.method, tuple(rec.layers), getattr(rec, 'fusion', None), rec.pool_stride


def dataset(spec: dict, args) -> str:
    if spec['data'] != 'shapes':
        return spec['data']
    from mmattnvis.datasets import generate_shapes_dataset
    path = osp.join(args.cache, f'shapes_seed2_{args.images}')
    if not osp.isfile(osp.join(path, 'annotations.json')):
        generate_shapes_dataset(path, num_images=args.images, seed=2)
    return path


def run_rows(model, pipeline, images, gt, methods, layers, args, sanity: bool,
             drise=None, fusion: Optional[str] = None, pool_stride: Optional[int] = None) -> list:
    from mmattnvis.apis.faithfulness_runner import FaithfulnessOptions, evaluate
    from mmattnvis.methods.explainers import DRISEOptions
    options = FaithfulnessOptions(methods=list(methods), target_layers=list(layers),
                                  topk=args.topk, steps=args.steps, seed=0, sanity=sanity,
                                  drise=drise or DRISEOptions(), fusion=fusion,
                                  pool_stride=pool_stride)
    return evaluate(model, pipeline, images, gt, options).rows


def relabel(rows, label: str, keep_random: bool) -> list:
    out = []
    for r in rows:
        if r['method'] == 'random':
            if keep_random:
                out.append(r)
            continue
        out.append(dict(r, method=label.format(method=r['method'])))
    return out


def model_table(name: str, args) -> dict:
    from mmattnvis.apis import build_test_pipeline, init_model
    from mmattnvis.apis.faithfulness_runner import FaithfulnessTable, find_dataset
    from mmattnvis.methods.explainers import DRISEOptions
    spec = MODELS[name]
    data = dataset(spec, args)
    images, gt = find_dataset(data)
    images = images[:args.images]
    ckpt = spec['checkpoint'] if osp.isabs(spec['checkpoint']) else osp.join(
        ROOT, spec['checkpoint'])
    cfg = spec['config'] if '::' in spec['config'] else osp.join(ROOT, spec['config'])
    model = init_model(cfg, ckpt, device='cpu')
    pipeline = build_test_pipeline(model.cfg)
    rows: list = []
    os.makedirs(osp.join(args.out, name), exist_ok=True)
    t0 = time.perf_counter()
    choices = layer_choices(model, spec)
    if args.layer_choices:
        choices = [choices[i] for i in args.layer_choices if i < len(choices)]
    for i, (label, layers) in enumerate(choices):
        got = run_rows(model, pipeline, images, gt, GRADIENT_METHODS, layers, args, True)
        rows += relabel(got, '{method} @ ' + label, keep_random=i == 0)
        print(f'{name}: {label} done ({time.perf_counter() - t0:.0f} s)', flush=True)
        FaithfulnessTable(rows).write(osp.join(args.out, name), f'{name} (partial)')
    rec = recommended(model)
    if rec is not None and rec[0] != 'drise' and rec[2] not in (None, 'mean'):
        got = run_rows(model, pipeline, images, gt, [rec[0]], rec[1], args, True, fusion=rec[2],
                       pool_stride=rec[3])
        rows += relabel(got, '{method} @ ' + f'auto ({rec[2]})', keep_random=False)
    drise_runs = sorted({(args.drise_sanity, True), (args.drise_cmp, False),
                         (args.drise_ref, False)})
    for n, sanity in ([] if args.no_drise else drise_runs):
        got = run_rows(model, pipeline, images, gt, ['drise'], (), args, sanity,
                       drise=DRISEOptions(n, spec['grid'], 0.5, None, 0))
        rows += relabel(got, f'drise N={n}', keep_random=False)
        print(f'{name}: drise N={n} done ({time.perf_counter() - t0:.0f} s)', flush=True)
    table = FaithfulnessTable(rows)
    out = osp.join(args.out, name)
    os.makedirs(out, exist_ok=True)
    n_dets = len({(r['image'], r['detection']) for r in rows})
    title = (f"{spec['title']}: {len(images)} images, top-{args.topk}, {n_dets} detections, "
             f'{args.steps} steps ({os.cpu_count()}-core CPU, OMP_NUM_THREADS='
             f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
             f'{os.getloadavg()[0]:.1f} at the end)')
    table.write(out, title)
    goal = goal_ratios(table, rec, args)
    goal['seconds_total'] = time.perf_counter() - t0
    with open(osp.join(out, 'goal.json'), 'w') as f:
        json.dump(goal, f, indent=1)
    return dict(name=name, title=title, table=table, goal=goal)


def goal_ratios(table, rec, args) -> dict:
    """The goal's numbers for every gradient row (and which one is recommended)."""
    summary = {s['method']: s for s in table.summary()}
    ref = summary.get(f'drise N={args.drise_cmp}')
    rows = {}
    for m, s in summary.items():
        if m.startswith(('drise', 'random')) or ref is None:
            continue
        rows[m] = dict(
            oa=s['oa'], oa_drise=ref['oa'],
            oa_ok=s['oa'] is not None and ref['oa'] is not None and s['oa'] >= ref['oa'],
            effective_area=s['effective_area'], area_ok=(s['effective_area'] or 0) >= 0.10,
            sanity_rho=s['sanity_backbone'], sanity_ok=bool(s['sanity_backbone'] is not None
                                                            and s['sanity_backbone'] < 0.5),
            speedup=(ref['seconds'] / s['seconds']) if s['seconds'] else None)
        rows[m]['speed_ok'] = (rows[m]['speedup'] or 0) >= 50
        rows[m]['all_ok'] = all(rows[m][k] for k in ('oa_ok', 'area_ok', 'sanity_ok',
                                                      'speed_ok'))
    rec_label = None
    if rec is not None and rec[0] != 'drise':
        rec_label = f'{rec[0]} @ auto' + (f' ({rec[2]})' if rec[2] not in (None, 'mean') else '')
    return dict(recommended=rec_label, compared_with=f'drise N={args.drise_cmp}', rows=rows)


def summary_markdown(result: dict) -> str:
    """The issue's columns for one model."""
    table = result['table']
    shapes = any(s['mask_iou'] is not None for s in table.summary())
    head = ['method @ layers', 'PG', 'energy PG' + (' (mask)' if shapes else ' (box)')]
    head += ['Mask-IoU'] if shapes else []
    head += ['deletion', 'insertion', 'OA', 'sanity rho head / all random (passed; flat)',
             'effective area', 's / det']
    lines = [f"### {result['title']}", '', '| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]

    def f(v, pct=False):
        return 'n/a' if v is None else (f'{100 * v:.1f} %' if pct else f'{v:.3f}')

    for s in table.summary():
        cells = [s['method'], f(s['pointing_game'], True),
                 f(s['energy_mask'] if shapes else s['energy_pg'])]
        cells += [f(s['mask_iou'])] if shapes else []
        sanity = ('n/a' if s['sanity_backbone'] is None else
                  f"{s['sanity_head']:.2f} / {s['sanity_backbone']:.2f} "
                  f"({f(s['sanity_pass'], True)}; flat {f(s['sanity_flat'], True)})")
        cells += [f(s['deletion_auc']), f(s['insertion_auc']), f(s['oa']), sanity,
                  f(s['effective_area'], True), f"{s['seconds']:.3f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def print_goal(result: dict) -> None:
    goal = result['goal']
    print(f"\n{result['name']}: goal ratios against {goal['compared_with']} "
          f"(recommended: {goal['recommended']})")
    for m, g in sorted(goal['rows'].items(), key=lambda kv: -(kv[1]['oa'] or -9)):
        mark = '*' if m == goal['recommended'] else ' '
        print(f"{mark} {m:45s} OA {g['oa']:.3f} / {g['oa_drise']:.3f} = "
              f"{g['oa'] / g['oa_drise'] if g['oa_drise'] else float('nan'):.2f}  "
              f"area {100 * (g['effective_area'] or 0):.1f} %  sanity rho "
              f"{g['sanity_rho'] if g['sanity_rho'] is not None else float('nan'):.2f}  "
              f"speed-up {g['speedup'] or 0:.0f}x  -> {'OK' if g['all_ok'] else 'missed'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--images', type=int, default=6)
    parser.add_argument('--topk', type=int, default=2)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--drise-ref', type=int, default=4000)
    parser.add_argument('--drise-cmp', type=int, default=1000)
    parser.add_argument('--drise-sanity', type=int, default=300)
    parser.add_argument('--no-drise', action='store_true', help='gradient maps only')
    parser.add_argument('--layer-choices', type=int, nargs='+', default=None,
                        help='indices of the model\'s layer choices to run (default: all)')
    parser.add_argument('--out', default=osp.join(ROOT, 'docs', 'faithfulness', 'trust'))
    parser.add_argument('--cache', default=osp.join(ROOT, 'data', 'faithfulness_tables'))
    args = parser.parse_args(argv)
    results = []
    for name in args.models:
        results.append(model_table(name, args))
        print(summary_markdown(results[-1]))
        print_goal(results[-1])
    md = '\n'.join(summary_markdown(r) for r in results)
    with open(osp.join(args.out, 'tables.md' if len(args.models) == len(MODELS) else
                       f"tables_{'_'.join(args.models)}.md"), 'w') as f:
        f.write(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
