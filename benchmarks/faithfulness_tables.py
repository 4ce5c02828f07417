"""Issue 26's faithfulness tables (``docs/faithfulness/trust/``) and the goals' ratios.

Per model (shapes YOLOv5-n, RetinaNet and DINO on held-out shapes images, the COCO YOLOv5-n on the
shared photos): every gradient method (the Grad-CAM family and ODAM) at every layer choice (single
layers, a fused set and, where ``mmattnvis.methods.auto`` exists, the ``auto`` set), the baseline
maps (random, the box itself, a blob the size of the box), D-RISE at the reference N, at the goal's
comparison N and, for its sanity check, at a small N. Columns: pointing game, energy pointing game
(in the object's mask on shapes, in the box on the photos), Mask-IoU (shapes), deletion, insertion,
OA, sanity check, effective area, seconds per detection. Then, per model, the goal's ratios for the
recommended map against D-RISE at the comparison N on the same detections, and whether each row's OA
and Mask-IoU beat the best baseline's (a column a map that knows only the box wins is no evidence)::

    OMP_NUM_THREADS=1 python benchmarks/faithfulness_tables.py \\
        [--models shapes_yolov5_n shapes_retinanet shapes_dino photos_yolov5_n] \\
        [--images 6] [--topk 2] [--steps 10] [--drise-ref 4000] [--drise-cmp 1000] \\
        [--drise-sanity 300] [--drise-box 100 300] [--occlusion 3 4] [--mean-row] \\
        [--box-curves] [--out docs/faithfulness/trust]

Each model writes ``OUT/<model>/faithfulness.{md,csv}`` and ``faithfulness_detections.csv``
(``tools/eval_faithfulness.py``'s files); ``OUT/<model>/goal.json`` holds the ratios and
``OUT/tables.md`` every model's summary (``docs/faithfulness/trust/README.md`` quotes it).

``--baselines-only`` scores only the baseline maps (and the ``--occlusion`` rows, if given) on
the detections of the tables already in ``OUT`` and puts them in (the random rows are recomputed
as a check that the detections and the scoring are the same: they must equal the stored ones),
then rewrites the tables and goals.
"""
import argparse
import csv
import json
import os
import os.path as osp
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from common import ROOT, SHARED

sys.path.insert(0, ROOT)

BASELINES = ('random', 'box', 'blur')
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
             drise=None, fusion: Optional[str] = None, pool_stride: Optional[int] = None,
             baselines: Sequence[str] = ()) -> list:
    from mmattnvis.apis.faithfulness_runner import FaithfulnessOptions, evaluate
    from mmattnvis.methods.explainers import DRISEOptions
    options = FaithfulnessOptions(methods=list(methods), target_layers=list(layers),
                                  topk=args.topk, steps=args.steps, seed=0, sanity=sanity,
                                  drise=drise or DRISEOptions(), fusion=fusion,
                                  pool_stride=pool_stride, baselines=tuple(baselines),
                                  box_curves=args.box_curves)
    return evaluate(model, pipeline, images, gt, options).rows


def relabel(rows, label: str) -> list:
    """``label`` (with ``{method}``) for every method's rows; the baselines keep their names."""
    return [r if r['method'] in BASELINES else dict(r, method=label.format(method=r['method']))
            for r in rows]


def load_model(spec: dict, args):
    """``(model, pipeline, images, ground truth)`` of a table."""
    from mmattnvis.apis import build_test_pipeline, init_model
    from mmattnvis.apis.faithfulness_runner import find_dataset
    images, gt = find_dataset(dataset(spec, args))
    ckpt = spec['checkpoint'] if osp.isabs(spec['checkpoint']) else osp.join(
        ROOT, spec['checkpoint'])
    cfg = spec['config'] if '::' in spec['config'] else osp.join(ROOT, spec['config'])
    model = init_model(cfg, ckpt, device='cpu')
    return model, build_test_pipeline(model.cfg), images[:args.images], gt


def model_table(name: str, args) -> dict:
    from mmattnvis.apis.faithfulness_runner import FaithfulnessTable
    from mmattnvis.methods.explainers import DRISEOptions
    spec = MODELS[name]
    model, pipeline, images, gt = load_model(spec, args)
    rows: list = []
    os.makedirs(osp.join(args.out, name), exist_ok=True)
    t0 = time.perf_counter()
    choices = layer_choices(model, spec)
    if args.layer_choices:
        choices = [choices[i] for i in args.layer_choices if i < len(choices)]
    rows += run_rows(model, pipeline, images, gt, [], (), args, True, baselines=BASELINES)
    for label, layers in choices:
        got = run_rows(model, pipeline, images, gt, GRADIENT_METHODS, layers, args, True)
        rows += relabel(got, '{method} @ ' + label)
        print(f'{name}: {label} done ({time.perf_counter() - t0:.0f} s)', flush=True)
        FaithfulnessTable(rows).write(osp.join(args.out, name), f'{name} (partial)')
    rec = recommended(model)
    if rec is not None and rec[0] != 'drise' and rec[2] not in (None, 'mean'):
        got = run_rows(model, pipeline, images, gt, [rec[0]], rec[1], args, True, fusion=rec[2],
                       pool_stride=rec[3])
        rows += relabel(got, '{method} @ ' + f'auto ({rec[2]})')
    if args.mean_row and rec is not None and rec[0] != 'drise':
        got = run_rows(model, pipeline, images, gt, [rec[0]], rec[1], args, True, fusion='mean',
                       pool_stride=16)
        rows += relabel(got, '{method} @ auto (mean, 16 px cells)')
    drise_runs = sorted({(args.drise_cmp, False), (args.drise_ref, False)}
                        | ({(args.drise_sanity, True)} if args.drise_sanity else set()))
    for n, sanity in ([] if args.no_drise else drise_runs):
        got = run_rows(model, pipeline, images, gt, ['drise'], (), args, sanity,
                       drise=DRISEOptions(n, spec['grid'], 0.5, None, 0))
        rows += relabel(got, f'drise N={n}')
        print(f'{name}: drise N={n} done ({time.perf_counter() - t0:.0f} s)', flush=True)
    for n in sorted(args.drise_box):  # the sanity check on the smallest N only
        got = run_rows(model, pipeline, images, gt, ['drise'], (), args, n == min(args.drise_box),
                       drise=DRISEOptions(n, spec['grid'], 0.5, None, 0, region='box'))
        rows += relabel(got, f'drise box N={n}')
        print(f'{name}: drise box N={n} done ({time.perf_counter() - t0:.0f} s)', flush=True)
    rows += occlusion_rows(model, pipeline, images, gt, args)
    n_dets = len({(r['image'], r['detection']) for r in rows})
    title = (f"{spec['title']}: {len(images)} images, top-{args.topk}, {n_dets} detections, "
             f'{args.steps} steps ({os.cpu_count()}-core CPU, OMP_NUM_THREADS='
             f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
             f'{os.getloadavg()[0]:.1f} at the end)')
    return write_model(name, FaithfulnessTable(rows), title, rec, args,
                       seconds_total=time.perf_counter() - t0)


def occlusion_rows(model, pipeline, images, gt, args) -> list:
    """``occlusion grid=K`` rows (``--method occlusion --occlusion-grid K``), sanity check on."""
    from mmattnvis.methods.explainers import DRISEOptions
    rows: list = []
    for k in sorted(args.occlusion):
        got = run_rows(model, pipeline, images, gt, ['occlusion'], (), args, True,
                       drise=DRISEOptions(occlusion_grid=k))
        rows += relabel(got, f'occlusion grid={k}')
        print(f'occlusion grid={k} done', flush=True)
    return rows


def write_model(name: str, table, title: str, rec, args, **extra) -> dict:
    """Write a model's table and ``goal.json``."""
    out = osp.join(args.out, name)
    os.makedirs(out, exist_ok=True)
    table.write(out, title)
    goal = dict(goal_ratios(table, rec, args), **extra)
    with open(osp.join(out, 'goal.json'), 'w') as f:
        json.dump(goal, f, indent=1)
    return dict(name=name, title=title, table=table, goal=goal)


def _value(v: str) -> Any:
    if v == '':
        return None
    try:
        return float(v)
    except ValueError:
        return v


def stored_rows(path: str) -> Tuple[str, list]:
    """The title and per-detection rows of a table written by :func:`write_model`."""
    with open(osp.join(path, 'faithfulness.md')) as f:
        title = f.readline().strip().lstrip('#').strip()
    with open(osp.join(path, 'faithfulness_detections.csv'), newline='') as f:
        rows = [{k: _value(v) for k, v in r.items()} for r in csv.DictReader(f)]
    for r in rows:  # the indices stay integers when the table is written again
        r['detection'], r['label'] = int(r['detection']), int(r['label'])
    return title, rows


def _detection(r: dict) -> tuple:
    return r['image'], int(r['detection']), int(r['label']), round(float(r['score']), 4)


def add_baselines(name: str, args) -> dict:
    """Score the baselines (and ``--occlusion`` rows) on the detections of the stored table
    ``OUT/<name>`` and put them in place of its rows of those names; the recomputed random rows
    must equal the stored ones."""
    from mmattnvis.apis.faithfulness_runner import COLUMNS, FaithfulnessTable
    spec = MODELS[name]
    title, rows = stored_rows(osp.join(args.out, name))
    model, pipeline, images, gt = load_model(spec, args)
    dets = {_detection(r) for r in rows}
    images = [p for p in images if osp.basename(p) in {d[0] for d in dets}]
    new = run_rows(model, pipeline, images, gt, [], (), args, True, baselines=BASELINES)
    if {_detection(r) for r in new} != dets:
        raise SystemExit(f'{name}: the detections differ from the stored table '
                         '(other --images / --topk / --steps than the stored run?)')
    old_random = {_detection(r): r for r in rows if r['method'] == 'random'}
    for r in new:
        if r['method'] == 'random' and _detection(r) in old_random:
            old = old_random[_detection(r)]
            for key in COLUMNS[2:]:  # every stored value but the wall time
                a, b = old.get(key), r.get(key)
                if key == 'seconds' or a is None:
                    continue
                if b is None or abs(float(a) - float(b)) > 1e-4:
                    raise SystemExit(f'{name}: random row {_detection(r)} {key} {b} != stored '
                                     f'{a}: not the same scoring as the stored table')
    new += occlusion_rows(model, pipeline, images, gt, args)
    replaced = {r['method'] for r in new}
    kept = [r for r in rows if r['method'] not in replaced]
    print(f'{name}: {len(new)} baseline / occlusion rows on {len(dets)} detections'
          + (f', random rows equal the stored {len(old_random)}' if old_random else ''),
          flush=True)
    return write_model(name, FaithfulnessTable(new + kept), title, recommended(model), args)


EVIDENCE = ('oa', 'box_oa', 'mask_iou')


def goal_ratios(table, rec, args) -> dict:
    """The goal's numbers for every gradient row (and which one is recommended), and for every
    row whether it beats the best baseline on OA, in-box OA and Mask-IoU: the paired difference
    per detection and its 95 % bootstrap interval (``*_beats_baselines``: the interval is above
    0)."""
    summary = {s['method']: s for s in table.summary()}
    ref = summary.get(f'drise N={args.drise_cmp}')
    best = best_baselines(summary)
    rows = {}
    for m, s in summary.items():
        if m in BASELINES:
            continue
        evidence: Dict[str, Any] = {}
        for k in EVIDENCE:
            diff = None if best.get(k) is None else table.paired(m, best[k][0], k)
            evidence[f'{k}_vs_baseline'] = diff
            evidence[f'{k}_beats_baselines'] = None if diff is None else diff['low'] > 0
        rows[m] = dict(oa=s['oa'], mask_iou=s['mask_iou'], box_oa=s['box_oa'], **evidence)
        if m.startswith('drise') or ref is None:
            continue
        rows[m].update(
            oa_drise=ref['oa'],
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
    return dict(recommended=rec_label, compared_with=f'drise N={args.drise_cmp}', rows=rows,
                best_baselines=best)


def best_baselines(summary: Dict[str, dict]) -> Dict[str, Optional[Tuple[str, float]]]:
    """Per column of :data:`EVIDENCE`, the best baseline row's ``(name, mean)``."""
    out: Dict[str, Optional[Tuple[str, float]]] = {}
    for key in EVIDENCE:
        got = [(m, summary[m][key]) for m in BASELINES
               if m in summary and summary[m][key] is not None]
        out[key] = max(got, key=lambda kv: kv[1]) if got else None
    return out


def summary_markdown(result: dict) -> str:
    """The issue's columns for one model."""
    table = result['table']
    shapes = any(s['mask_iou'] is not None for s in table.summary())
    head = ['method @ layers', 'PG', 'energy PG' + (' (mask)' if shapes else ' (box)')]
    head += ['Mask-IoU'] if shapes else []
    in_box = any(s['box_oa'] is not None for s in table.summary())
    head += ['deletion', 'insertion', 'OA']
    head += ['in-box del / ins', 'in-box OA'] if in_box else []
    head += ['sanity rho head / all random (passed; flat)', 'effective area', 's / det']
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
        cells += [f(s['deletion_auc']), f(s['insertion_auc']), f(s['oa'])]
        cells += ([f"{f(s['box_deletion_auc'])} / {f(s['box_insertion_auc'])}", f(s['box_oa'])]
                  if in_box else [])
        cells += [sanity, f(s['effective_area'], True), f"{s['seconds']:.3f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def print_goal(result: dict) -> None:
    goal = result['goal']
    best = goal.get('best_baselines') or {}
    print(f"\n{result['name']}: goal ratios against {goal['compared_with']} "
          f"(recommended: {goal['recommended']}); best baseline: "
          + ', '.join(f'{k} {v[0]} {v[1]:.3f}' for k, v in best.items() if v))

    def beats(g) -> str:
        out = []
        for k in EVIDENCE:
            d = g.get(f'{k}_vs_baseline')
            if d:
                out.append(f"{k} vs {best[k][0]} {d['mean']:+.3f} [{d['low']:+.3f}, "
                           f"{d['high']:+.3f}] {'>' if d['low'] > 0 else 'not >'}")
        return '; '.join(out)

    for m, g in sorted(goal['rows'].items(), key=lambda kv: -(kv[1]['oa'] or -9)):
        mark = '*' if m == goal['recommended'] else ' '
        if 'all_ok' not in g:  # D-RISE
            print(f"  {m:45s} OA {g['oa']:.3f}  {beats(g)}")
            continue
        print(f"{mark} {m:45s} OA {g['oa']:.3f} / {g['oa_drise']:.3f} = "
              f"{g['oa'] / g['oa_drise'] if g['oa_drise'] else float('nan'):.2f}  "
              f"area {100 * (g['effective_area'] or 0):.1f} %  sanity rho "
              f"{g['sanity_rho'] if g['sanity_rho'] is not None else float('nan'):.2f}  "
              f"speed-up {g['speedup'] or 0:.0f}x  {beats(g)}  -> "
              f"{'OK' if g['all_ok'] else 'missed'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--images', type=int, default=6)
    parser.add_argument('--topk', type=int, default=2)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--drise-ref', type=int, default=4000)
    parser.add_argument('--drise-cmp', type=int, default=1000)
    parser.add_argument('--drise-sanity', type=int, default=300,
                        help='N of the D-RISE run with the sanity check (0: no such run)')
    parser.add_argument('--drise-box', type=int, nargs='*', default=[],
                        help='rows of D-RISE with masks over each detection\'s own box '
                        '(--drise-region box) at these N (sanity check at the smallest)')
    parser.add_argument('--occlusion', type=int, nargs='*', default=[],
                        help='rows of --method occlusion at these --occlusion-grid values')
    parser.add_argument('--mean-row', action='store_true',
                        help='add the recommended method over the auto layers fused by mean '
                        'with 16 px cells (the proposed fusion) as a row')
    parser.add_argument('--no-drise', action='store_true', help='gradient maps only')
    parser.add_argument('--box-curves', action='store_true',
                        help='in-box deletion / insertion / OA as well (eval_faithfulness '
                        '--box-curves)')
    parser.add_argument('--baselines-only', action='store_true',
                        help='score only the baseline maps on the stored tables\' detections '
                        'and put them in (same --images / --topk / --steps as the stored run)')
    parser.add_argument('--layer-choices', type=int, nargs='+', default=None,
                        help='indices of the model\'s layer choices to run (default: all)')
    parser.add_argument('--out', default=osp.join(ROOT, 'docs', 'faithfulness', 'trust'))
    parser.add_argument('--cache', default=osp.join(ROOT, 'data', 'faithfulness_tables'))
    args = parser.parse_args(argv)
    results = []
    for name in args.models:
        results.append(add_baselines(name, args) if args.baselines_only
                       else model_table(name, args))
        print(summary_markdown(results[-1]))
        print_goal(results[-1])
    md = '\n'.join(summary_markdown(r) for r in results)
    with open(osp.join(args.out, 'tables.md' if len(args.models) == len(MODELS) else
                       f"tables_{'_'.join(args.models)}.md"), 'w') as f:
        f.write(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
