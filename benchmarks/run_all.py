"""Run every benchmark, print medians and ratios as a table, write benchmarks/results.md.

    python benchmarks/run_all.py [--quick]
"""
import argparse
import datetime
import os.path as osp
import platform

import bench_attention
import bench_cam
import bench_drise
import bench_featmap_e2e
import bench_hook_overhead
import bench_render


def _notes(path: str) -> str:
    """The hand-written sections of ``results.md`` (from its first ``## `` heading on), kept
    when the table above them is regenerated."""
    if not osp.isfile(path):
        return ''
    with open(path) as f:
        old = f.read()
    at = old.find('\n## ')
    return '' if at < 0 else old[at:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quick', action='store_true', help='fewer repetitions')
    args = parser.parse_args()
    rep = 2 if args.quick else None
    rows = []
    rows.append(bench_render.run(**({'repeat': rep} if rep else {})))
    rows.append(bench_featmap_e2e.run(**({'repeat': rep} if rep else {})))
    rows += bench_hook_overhead.run(**({'repeat': rep} if rep else {}))
    rows += bench_attention.run(**({'repeat': rep} if rep else {}))
    rows += bench_cam.run(**({'repeat': rep} if rep else {}))
    rows += bench_drise.run(**({'repeat': rep} if rep else {}))
    import torch
    lines = [
        '# Benchmark results', '',
        f'{datetime.date.today()} · {platform.processor() or platform.machine()} · '
        f'{torch.get_num_threads()} threads · torch {torch.__version__}', '',
        '| benchmark | medians | ratio | goal | met |', '| --- | --- | --- | --- | --- |'
    ]
    for r in rows:
        met = 'n/a' if r['ok'] is None else ('yes' if r['ok'] else 'NO')
        lines.append(f"| {r['name']} | {r['timings']} | {r['ratio']:.3f} | {r['goal']} | {met} |")
    text = '\n'.join(lines) + '\n'
    out = osp.join(osp.dirname(osp.abspath(__file__)), 'results.md')
    text += _notes(out)
    with open(out, 'w') as f:
        f.write(text)
    print()
    print(text)
    print(f'written to {out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
