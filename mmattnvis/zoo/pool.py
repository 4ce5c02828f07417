"""Many configs, one process each: a crash, hang or OOM in one config cannot stop the sweep."""
import multiprocessing as mp
import os
import os.path as osp
import sys
import time
from collections import OrderedDict
from multiprocessing.connection import wait as mp_wait
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .check import check_config
from .discovery import ConfigEntry, Record

PRELOAD = ('mmcv.ops', 'mmdet.models', 'mmdet.datasets', 'mmyolo.models', 'mmyolo.datasets',
           'mmattnvis.apis', 'mmattnvis.capture', 'mmattnvis.render.featmap', 'mmattnvis.zoo')


def _context() -> Any:
    """A ``forkserver`` context whose server imports :data:`PRELOAD` once, so workers start warm
    (about 10 s of imports saved per config) yet never inherit a used OpenMP thread pool (a
    plain ``fork`` after any torch op can hang the child)."""
    try:
        ctx = mp.get_context('forkserver')
    except ValueError:
        return mp.get_context('spawn')
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def _noop() -> None:
    pass


def _worker(conn: Any, path: str, img_size: int, threads: int, log_path: Optional[str],
            panel_dir: Optional[str] = None) -> None:
    if log_path:
        os.makedirs(osp.dirname(log_path), exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    import warnings
    warnings.filterwarnings('ignore')
    if threads > 0:
        import torch
        torch.set_num_threads(threads)
    record = check_config(path, img_size, log_traceback=True, panel_dir=panel_dir)
    conn.send(dict(record))
    conn.close()


def run_sweep(entries: Iterable[ConfigEntry],
              jobs: int = 1,
              timeout: float = 120.0,
              img_size: int = 128,
              log_dir: Optional[str] = None,
              on_record: Optional[Callable[[Record], None]] = None,
              panel_dir: Optional[str] = None) -> List[Record]:
    """Check ``entries``, each in its own process so a crash, hang or OOM in one config
    cannot stop the sweep.

    Args:
        entries: Configs from :func:`discover_configs`.
        jobs: Processes at once (torch uses one thread each when ``jobs > 1``).
        timeout: Seconds per config before it is killed and recorded as ``fail``.
        img_size: See :func:`check_config`.
        log_dir: Keep each non-passing config's output and traceback in
            ``log_dir/<package>/<config>.log``.
        on_record: Called with each record as it completes.
        panel_dir: Keep each passing config's rendered panel there (see :func:`check_config`).
    """
    ctx = _context()
    warm = ctx.Process(target=_noop)  # start the server (its imports) before any clock runs
    warm.start()
    warm.join()
    pending = list(entries)
    running: Dict[Any, Tuple[Any, Any, ConfigEntry, float, Optional[str]]] = {}
    records: List[Record] = []
    threads = 1 if jobs > 1 else 0

    def finish(record: Record, entry: ConfigEntry, log_path: Optional[str]) -> None:
        if log_path and osp.exists(log_path):
            if record['status'] == 'pass':
                os.remove(log_path)
            else:
                assert log_dir is not None  # a log path is made only with a log_dir
                final = osp.join(log_dir, entry.package, entry.config[:-3] + '.log')
                os.makedirs(osp.dirname(final), exist_ok=True)
                os.replace(log_path, final)
        records.append(record)
        if on_record is not None:
            on_record(record)

    while pending or running:
        while pending and len(running) < max(1, jobs):
            entry = pending.pop(0)
            log_path = osp.join(log_dir, '.running', f'{len(records) + len(running)}.log') \
                if log_dir else None
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(send, entry.path, img_size, threads,
                                                     log_path, panel_dir), daemon=True)
            proc.start()
            send.close()
            running[proc.sentinel] = (proc, recv, entry, time.perf_counter(), log_path)
        mp_wait([r[1] for r in running.values()] + list(running), timeout=0.5)
        for key, (proc, recv, entry, started, log_path) in list(running.items()):
            record: Optional[Record] = None
            elapsed = time.perf_counter() - started
            if elapsed > timeout:
                # Over time is a timeout even when a result came in since the last look: the
                # verdict must not depend on when the 0.5 s poll happened to wake up.
                proc.kill()
                proc.join()
                record = OrderedDict(package=entry.package, family=entry.family,
                                     config=entry.config, status='fail',
                                     reason=f'timeout after {timeout:g}s',
                                     seconds=round(elapsed, 2))
            elif recv.poll():
                try:
                    record = recv.recv()
                except EOFError:
                    record = None
                proc.join(5)
                if record is None:
                    record = _died(entry, proc, elapsed)
            elif not proc.is_alive():
                proc.join()
                record = _died(entry, proc, elapsed)
            if record is not None:
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                recv.close()
                del running[key]
                finish(record, entry, log_path)
    if log_dir:
        for d in (osp.join(log_dir, '.running'), log_dir):
            if osp.isdir(d) and not os.listdir(d):
                os.rmdir(d)
    return records


def _died(entry: ConfigEntry, proc: Any, elapsed: float) -> Record:
    code = proc.exitcode
    how = f'signal {-code}' if code is not None and code < 0 else f'exit code {code}'
    return OrderedDict(package=entry.package, family=entry.family, config=entry.config,
                       status='fail', reason=f'worker died ({how}; out of memory?)'
                       if code == -9 else f'worker died ({how})', seconds=round(elapsed, 2))
