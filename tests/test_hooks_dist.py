"""``torchrun --nproc_per_node 2 tools/test.py ... --launcher pytorch`` (CPU, gloo): every rank's
records (feature maps, D-RISE, faithfulness rows, error labels) reach the one index and the one
report, and equal a single-process run's."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest

from mmattnvis.sinks import load_results
from mmattnvis.utils.package_data import shipped_model

from conftest import ROOT
from runner_utils import assert_same_row, make_dataset, runner_cfg

N_IMAGES = 12
HOOKS = [
    dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'],
         channel_reduction='squeeze_mean', interval=1, out_dir='png', results_dir='res',
         report_dir='report'),
    dict(type='mmattnvis.ExplainHook', task='drise', drise_masks=16, drise_grid=4,
         drise_batch=8, drise_fast=True, topk=2, interval=1, draw=False, results_dir='drise',
         report_dir='drise_report'),
    dict(type='mmattnvis.ErrorHook', method='drise', drise_masks=8, drise_grid=4, max_maps=2,
         score_thr=0.5, results_dir='errors', report_dir='errors_report'),
    dict(type='mmattnvis.ExplainHook', task='occlusion', occlusion_grid=2, topk=2, interval=1,
         draw=False, results_dir='occl', report_dir='occl_report'),
    # the faithfulness table with the baseline rows and the in-box curves (#26's options)
    dict(type='mmattnvis.ExplainHook', task='faithfulness', method=['gradcam'],
         target_layers=['neck'], topk=1, steps=3, baselines=['random', 'box'], box_curves=True,
         interval=1, draw=False, results_dir='faith', report_dir='faith_report'),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _test(cfg_path, weights, work_dir, ranks):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    tool = [osp.join(ROOT, 'tools', 'test.py'), cfg_path, weights, '--work-dir', str(work_dir)]
    if ranks > 1:
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(ranks),
               '--master_addr', '127.0.0.1', '--master_port', str(_free_port())] + tool + [
                   '--launcher', 'pytorch']
    else:
        cmd = [sys.executable] + tool
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dist')
    config, weights = shipped_model('yolov5_n_shapes')
    root, ann = make_dataset(tmp / 'data', num_images=N_IMAGES, seed=21)
    cfg = runner_cfg(config, root, ann, tmp / 'unused', custom_hooks=HOOKS, batch_size=2,
                     scale=160)
    cfg_path = str(tmp / 'cfg.py')
    cfg.dump(cfg_path)
    _test(cfg_path, weights, tmp / 'two', 2)
    _test(cfg_path, weights, tmp / 'one', 1)
    return tmp / 'two', tmp / 'one'


def _page(report_dir):
    text = (report_dir / 'data' / 'index.js').read_text()
    return json.loads(text[text.index('=') + 1:].strip().rstrip(';'))


def _same_records(a, b):
    assert osp.basename(a.image_path) == osp.basename(b.image_path)
    assert a.geometry == b.geometry
    assert [(d.label, d.rank) for d in a.detections] == [(d.label, d.rank)
                                                         for d in b.detections]
    for da, db in zip(a.detections, b.detections):
        np.testing.assert_allclose(da.bbox, db.bbox, atol=1e-4)
        assert abs(da.score - db.score) < 1e-5
    assert list(a.maps) == list(b.maps)
    for key in a.maps:
        np.testing.assert_allclose(a.maps[key].data, b.maps[key].data, rtol=1e-5, atol=1e-5)
    return len(a.maps)


@pytest.mark.parametrize('results, report, task', [('res', 'report', 'featmap'),
                                                   ('drise', 'drise_report', 'cam'),
                                                   ('occl', 'occl_report', 'cam'),
                                                   ('faith', 'faith_report', 'faithfulness')])
def test_two_ranks_keep_every_record_and_equal_one_process(runs, results, report, task):
    two, one = runs
    index2, records2 = load_results(str(two / results / 'test'))
    index1, records1 = load_results(str(one / results / 'test'))
    assert index2['task'] == index1['task'] == task
    # every sample of both ranks (6 each), in dataset order, as one process writes them
    assert len(records2) == N_IMAGES  # before: 6, rank 0's only
    assert index2['records'] == index1['records']
    parts = sorted(os.listdir(two / results / 'test' / 'parts'))
    assert parts == ['rank0.jsonl', 'rank1.jsonl']
    per_rank = [len((two / results / 'test' / 'parts' / p).read_text().splitlines())
                for p in parts]
    assert per_rank == [N_IMAGES // 2, N_IMAGES // 2]
    compared = sum(_same_records(a, b) for a, b in zip(records2, records1))
    if results == 'occl':  # the occlusion maps of every rank's detections
        metas = [m.meta for r in records2 for m in r.maps.values() if 'rank' in m.meta]
        assert metas and all(m['method'] == 'occlusion' and m['grid'] == 2 for m in metas)
    assert compared >= N_IMAGES
    if results == 'drise':  # D-RISE on each rank's checked inference copy
        assert all(m.meta['fast'] is True for r in records2 for m in r.maps.values())
    page2, page1 = _page(two / report / 'test'), _page(one / report / 'test')
    assert len(page2['images']) == len(page1['images']) == N_IMAGES
    assert [im['name'] for im in page2['images']] == [im['name'] for im in page1['images']]


def test_two_ranks_keep_every_faithfulness_row(runs):
    """The faithfulness table in the hook on two ranks: every detection's rows (the method, the
    random and box baselines, the in-box curves) equal one process's, value by value."""
    two, one = runs
    rows2 = [r for rec in load_results(str(two / 'faith' / 'test'))[1] for r in rec.info['rows']]
    rows1 = [r for rec in load_results(str(one / 'faith' / 'test'))[1] for r in rec.info['rows']]
    assert len(rows2) == len(rows1) == 3 * N_IMAGES  # gradcam, random, box per top-1 detection
    assert {r['method'] for r in rows2} == {'gradcam', 'random', 'box'}
    assert all(r['box_oa'] is not None for r in rows2)
    for a, b in zip(rows2, rows1):
        assert (a['image'], a['method']) == (b['image'], b['method'])
        assert_same_row(a, b, 1e-5)


def test_two_ranks_keep_every_error_label_and_the_tide_numbers(runs):
    """ErrorHook on two ranks: one index of every sample, the same labels, maps and TIDE
    summary as one process, and the errors page built from all of them."""
    two, one = runs
    index2, records2 = load_results(str(two / 'errors' / 'test'))
    index1, records1 = load_results(str(one / 'errors' / 'test'))
    assert index2['task'] == 'errors' and len(records2) == N_IMAGES
    assert index2['records'] == index1['records']
    for a, b in zip(records2, records1):
        _same_records(a, b)
        assert a.info['errors']['detections'] == b.info['errors']['detections']
        assert a.info['errors']['ground_truth'] == b.info['errors']['ground_truth']
    summary2 = json.loads((two / 'errors' / 'test' / 'errors_summary.json').read_text())
    summary1 = json.loads((one / 'errors' / 'test' / 'errors_summary.json').read_text())
    assert summary2 == summary1 and summary2['images'] == N_IMAGES
    page = (two / 'errors_report' / 'test' / 'errors.html').read_text()
    assert page.count('<tr data-kind=') == sum(summary2['counts'].values())


def test_two_ranks_figures_unchanged(runs):
    two, _ = runs
    files = os.listdir(two / 'png' / 'test')
    assert len(files) == N_IMAGES * 3  # three neck levels per image, per rank suffix
    assert sum('_rank1_' in f for f in files) == N_IMAGES // 2 * 3


def test_two_ranks_attention_hook_keeps_every_record(tmp_path):
    """AttentionVisHook (deformable, the shipped DINO) on 2 ranks: one index and one report of
    every sample of both ranks, equal to one process (records, sampling points, maps)."""
    n = 2  # one per rank
    config, weights = shipped_model('dino_slim_shapes')
    root, ann = make_dataset(tmp_path / 'data', num_images=n, seed=22)
    hook = dict(type='mmattnvis.AttentionVisHook', mode='deformable', interval=1, max_queries=2,
                results_dir='attn', report_dir='attn_report')
    # batch 1: DETR batches pad every image to the batch's largest, and the distributed
    # sampler groups other images than one process does
    cfg = runner_cfg(config, root, ann, tmp_path / 'unused', custom_hooks=[hook], batch_size=1,
                     scale=256)
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    _test(cfg_path, weights, tmp_path / 'two', 2)
    _test(cfg_path, weights, tmp_path / 'one', 1)
    index2, records2 = load_results(str(tmp_path / 'two' / 'attn' / 'test'))
    index1, records1 = load_results(str(tmp_path / 'one' / 'attn' / 'test'))
    assert index2['task'] == 'attention' and len(records2) == n
    assert index2['records'] == index1['records']
    parts = sorted(os.listdir(tmp_path / 'two' / 'attn' / 'test' / 'parts'))
    assert parts == ['rank0.jsonl', 'rank1.jsonl']
    for a, b in zip(records2, records1):
        _same_records(a, b)
        assert sorted(a.arrays) == sorted(b.arrays) and a.arrays  # the sampling points
        for key in a.arrays:
            np.testing.assert_allclose(a.arrays[key], b.arrays[key], rtol=1e-5, atol=1e-5)
    page = _page(tmp_path / 'two' / 'attn_report' / 'test')
    assert len(page['images']) == n
