"""Issue 25's resume goal, for real: ``ExplainHook(task='drise')`` over ``N`` shapes images on
2 CPU ranks (``torchrun``, gloo), killed mid-run, restarted in the same work dir.

1. ``torchrun --nproc_per_node 2 tools/test.py CFG CKPT --launcher pytorch`` is started and
   killed (SIGKILL to its process group) once the ranks have saved ``--kill-after`` records;
2. the same command again: the samples whose records exist are skipped (their files keep their
   modification times), the others computed; the index holds every image once;
3. one process (``python tools/test.py``) in a fresh work dir: its records equal the resumed
   2-rank run's (same detections, maps to 1e-5).

Prints the counts and the check results. Timing-dependent by nature (where the kill lands), so
it is a script, not a test; ``tests/test_explain_hook.py`` checks resume deterministically.

    python benchmarks/bench_resume_kill.py [--images 100] [--kill-after 30] [--masks 16]
"""
import argparse
import glob
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import ROOT

sys.path.insert(0, osp.join(ROOT, 'tests'))


def _cmd(cfg_path: str, weights: str, work: str, ranks: int) -> list:
    tool = [osp.join(ROOT, 'tools', 'test.py'), cfg_path, weights, '--work-dir', work]
    if ranks == 1:
        return [sys.executable] + tool
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(ranks),
            '--master_addr', '127.0.0.1', '--master_port', str(port)] + tool + [
                '--launcher', 'pytorch']


def _saved(res: str) -> int:
    return len(glob.glob(osp.join(res, 'records', '*.npz')))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--images', type=int, default=100)
    parser.add_argument('--kill-after', type=int, default=30)
    parser.add_argument('--masks', type=int, default=16)
    args = parser.parse_args()
    from mmattnvis.sinks import load_results
    from mmattnvis.utils.package_data import shipped_model

    from runner_utils import make_dataset, runner_cfg
    env = dict(os.environ, OMP_NUM_THREADS='1')
    config, weights = shipped_model('yolov5_n_shapes')
    hook = dict(type='mmattnvis.ExplainHook', task='drise', drise_masks=args.masks,
                drise_grid=4, drise_batch=8, topk=2, interval=1, draw=False,
                results_dir='res')
    with tempfile.TemporaryDirectory() as tmp:
        root, ann = make_dataset(osp.join(tmp, 'data'), num_images=args.images, seed=7)
        cfg = runner_cfg(config, root, ann, osp.join(tmp, 'unused'), custom_hooks=[hook],
                         batch_size=2, scale=160)
        cfg_path = osp.join(tmp, 'cfg.py')
        cfg.dump(cfg_path)
        work = osp.join(tmp, 'two')
        res = osp.join(work, 'res', 'test')
        t0 = time.perf_counter()
        proc = subprocess.Popen(_cmd(cfg_path, weights, work, 2), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        while proc.poll() is None and _saved(res) < args.kill_after:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = {osp.basename(p): os.stat(p).st_mtime_ns
                  for p in glob.glob(osp.join(res, 'records', '*.npz'))}
        print(f'killed after {time.perf_counter() - t0:.1f} s with {len(before)} of '
              f'{args.images} records saved; index written: '
              f'{osp.isfile(osp.join(res, "index.json"))}')
        t1 = time.perf_counter()
        rc = subprocess.run(_cmd(cfg_path, weights, work, 2), env=env, capture_output=True,
                            text=True).returncode
        resumed = time.perf_counter() - t1
        kept = sum(os.stat(osp.join(res, 'records', n)).st_mtime_ns == m
                   for n, m in before.items())
        index, records = load_results(res)
        print(f'restart: rc {rc}, {resumed:.1f} s; records {len(index["records"])} '
              f'(unique {len(set(index["records"]))}); the {len(before)} saved before the kill '
              f'kept untouched: {kept}')
        one = osp.join(tmp, 'one')
        subprocess.run(_cmd(cfg_path, weights, one, 1), env=env, capture_output=True,
                       check=True)
        index1, records1 = load_results(osp.join(one, 'res', 'test'))
        same = index1['records'] == index['records']
        maps = 0
        for a, b in zip(records, records1):
            same &= [(d.label, d.rank) for d in a.detections] == [(d.label, d.rank)
                                                                 for d in b.detections]
            same &= list(a.maps) == list(b.maps)
            for key in a.maps:
                same &= bool(np.allclose(a.maps[key].data, b.maps[key].data, atol=1e-5))
                maps += 1
        print(f'one process: {len(records1)} records; resumed 2-rank run equal '
              f'(order, detections, {maps} maps to 1e-5): {same}')


if __name__ == '__main__':
    main()
