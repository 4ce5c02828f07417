"""The hooks inside runner.train(): nothing changes in training, per-epoch files do not overwrite
each other, TensorBoard steps are epochs, evolution figures follow one object per row, resume
continues the evolution, every hook is removed (also on failure)."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import ROOT, hook_count
from runner_utils import make_dataset, runner_cfg, train_cfg

RETINA = osp.join(ROOT, 'configs/shapes/retinanet_r18w32_fpn_shapes.py')
DINO = osp.join(ROOT, 'configs/shapes/dino_slim_shapes.py')
FEAT = dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'], out_dir='vis',
            fixed_samples=2)
ATTN = dict(type='mmattnvis.AttentionVisHook', mode='deformable', out_dir='vis',
            fixed_samples=2, score_thr=0.0, max_queries=2)
TB = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    return (make_dataset(root / 'train', num_images=4, seed=21),
            make_dataset(root / 'val', num_images=2, seed=22))


def _model(runner):
    return runner.model.module if hasattr(runner.model, 'module') else runner.model


class HeldProbe(Hook):
    """After every validation epoch: what the mmattnvis hook's capture still holds."""
    priority = 'LOWEST'

    def __init__(self):
        self.held = []

    def after_val_epoch(self, runner, metrics=None):
        vis = [h for h in runner.hooks if type(h).__module__.startswith('mmattnvis')]
        rec = vis[0]._capture.record if hasattr(vis[0]._capture, 'record') else None
        if rec is not None:
            self.held.append(len(rec.deformable) + len(rec.dense))
        else:
            self.held.append(sum(len(c) for c in vis[0]._capture.records.values()))


def _train(cfg, probe=None):
    runner = Runner.from_cfg(cfg)
    if probe is not None:
        runner.register_hook(probe, 'LOWEST')
    runner.train()
    return runner


def _tb_events(work_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    dirs = {d for d, _, names in os.walk(work_dir) if any('tfevents' in n for n in names)}
    assert len(dirs) == 1
    acc = EventAccumulator(dirs.pop(), size_guidance={'images': 0, 'scalars': 0})
    acc.Reload()
    return acc


@pytest.fixture(scope='module')
def retina_runs(data, tmp_path_factory):
    """RetinaNet trained 2 epochs without and with FeatMapVisHook (same seed)."""
    pytest.importorskip('tensorboard')
    train, val = data
    base = _train(train_cfg(RETINA, train, val, tmp_path_factory.mktemp('plain'), []))
    probe = HeldProbe()
    work = tmp_path_factory.mktemp('hooked')
    feat = dict(FEAT, results_dir='res', report_dir='rep')
    hooked = _train(train_cfg(RETINA, train, val, work, [feat], vis_backends=TB), probe)
    return base, hooked, work, probe


def test_training_is_unchanged_by_the_hook(retina_runs):
    base, hooked, _, probe = retina_runs
    sa, sb = _model(base).state_dict(), _model(hooked).state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert hook_count(_model(hooked)) == 0
    assert probe.held == [0, 0]  # captures cleared after each epoch's drawing


def test_training_records_and_report_cover_every_epoch(retina_runs):
    from mmattnvis.sinks import load_results
    _, _, work, _ = retina_runs
    index, records = load_results(str(work / 'res' / 'train'))
    assert index['task'] == 'featmap' and index['info']['loop'] == 'train'
    # the 2 fixed samples at epochs 1 and 2, each with one map per FPN level (5)
    assert sorted(r.info['step'] for r in records) == [1, 1, 2, 2]
    assert all(s.endswith(('_epoch1', '_epoch2')) for s in index['records'])
    assert all([m.meta['layer'] for m in r.maps.values()] == [f'neck.{i}' for i in range(5)]
               for r in records)
    text = (work / 'rep' / 'train' / 'data' / 'index.js').read_text()
    page = json.loads(text[text.index('=') + 1:].strip().rstrip(';'))
    assert len(page['images']) == 4


def test_drise_on_the_inference_copy_leaves_training_unchanged(retina_runs, data, tmp_path):
    """ExplainHook(drise, drise_fast=True) in runner.train(): the trained weights, BatchNorm
    statistics included, equal a run without the hook, nothing is written (the hook draws
    nothing during training) and nothing is left on the model. The copy inside test() and on
    2 ranks: test_explain_hook.py, test_hooks_dist.py."""
    base = retina_runs[0]
    train, val = data
    hook = dict(type='mmattnvis.ExplainHook', task='drise', drise_masks=8, drise_grid=4,
                drise_fast=True, topk=1, interval=1, draw=False, results_dir='res')
    hooked = _train(train_cfg(RETINA, train, val, tmp_path, [hook]))
    sa, sb = _model(base).state_dict(), _model(hooked).state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert hook_count(_model(hooked)) == 0
    assert not [p for p in (tmp_path / 'res').rglob('*') if p.is_file()]  # nothing in train()



def test_per_epoch_files_and_tensorboard_steps(retina_runs):
    _, _, work, _ = retina_runs
    files = sorted(os.listdir(work / 'vis' / 'val'))
    # 2 fixed samples x 5 FPN levels x 2 epochs, none overwritten
    assert len(files) == 2 * 5 * 2
    e1 = {f.replace('_epoch1', '') for f in files if f.endswith('_epoch1.png')}
    e2 = {f.replace('_epoch2', '') for f in files if f.endswith('_epoch2.png')}
    assert e1 == e2 and len(e1) == 10
    acc = _tb_events(work)
    tags = acc.Tags()['images']
    assert len(tags) == 10 + 2  # per-sample level images, and one evolution figure per sample
    level_tag = sorted(t for t in tags if t.endswith('neck.0'))[0]
    assert [e.step for e in acc.Images(level_tag)] == [1, 2]


def test_evolution_figure_and_gif(retina_runs):
    import cv2
    import imageio.v2 as imageio
    _, _, work, _ = retina_runs
    root = work / 'vis' / 'evolution' / 'FeatMapVisHook'
    figs = sorted(p for p in os.listdir(root) if p.endswith('_evolution.png'))
    gifs = sorted(p for p in os.listdir(root) if p.endswith('_evolution.gif'))
    assert len(figs) == 2 and len(gifs) == 2
    fig = cv2.imread(str(root / figs[0]))
    # two epoch columns of 224-px cells (3 px apart), five rows (levels)
    assert fig.shape[1] == 2 * 224 + 3
    assert fig.shape[0] > 5 * 100 and fig.std() > 10
    frames = imageio.mimread(str(root / gifs[0]))
    assert len(frames) == 2 and not np.array_equal(frames[0], frames[1])


def test_resume_continues_the_evolution(data, tmp_path):
    train, val = data
    hook = dict(FEAT, target_layers=['backbone.layer4'], fixed_samples=1)
    _train(train_cfg(RETINA, train, val, tmp_path, [hook], epochs=1))
    store = tmp_path / 'vis' / 'evolution' / 'FeatMapVisHook'
    tag = os.listdir(store)[0]
    assert sorted(os.listdir(store / tag)) == ['epoch_0001.npz']
    cfg = train_cfg(RETINA, train, val, tmp_path, [hook], epochs=2)
    cfg.resume = True
    from mmattnvis.compat.mmengine_checkpoint import allow_runner_checkpoint_globals
    with allow_runner_checkpoint_globals():  # MMEngine's own checkpoints, weights-only
        _train(cfg)
    assert sorted(n for n in os.listdir(store / tag)) == ['epoch_0001.npz', 'epoch_0002.npz']
    from mmattnvis.hooks.evolution import EvolutionStore
    records = EvolutionStore(str(tmp_path / 'vis'), 'FeatMapVisHook').load(tag)
    assert [r['epoch'] for r in records] == [1, 2]
    # a fresh (not resumed) run in the same work_dir starts a new evolution
    _train(train_cfg(RETINA, train, val, tmp_path, [hook], epochs=1))
    assert sorted(os.listdir(store / tag)) == ['epoch_0001.npz']


def test_dino_attention_evolution_follows_ground_truth(data, tmp_path):
    pytest.importorskip('tensorboard')
    train, val = data
    probe = HeldProbe()
    runner = _train(train_cfg(DINO, train, val, tmp_path, [ATTN], vis_backends=TB), probe)
    assert hook_count(_model(runner)) == 0 and probe.held == [0, 0]
    from mmattnvis.hooks.evolution import EvolutionStore
    store = EvolutionStore(str(tmp_path / 'vis'), 'AttentionVisHook')
    tags = store.tags()
    assert len(tags) == 2
    info = runner.val_dataloader.dataset
    for tag in tags:
        records = store.load(tag)
        assert [r['epoch'] for r in records] == [1, 2]
        idx = [i for i in range(len(info)) if tag.startswith(
            osp.splitext(osp.basename(info.get_data_info(i)['img_path']))[0])][0]
        gt = [inst['bbox'] for inst in info.get_data_info(idx)['instances']]
        # one row per ground-truth object, each row keeps its object in every epoch
        for rec in records:
            assert rec['keys'] == [f'gt{g}' for g in range(len(gt))]
            for g in range(len(gt)):
                assert rec['meta'][f'gt{g}']['gt_box'] == pytest.approx(gt[g])
            hits = [rec['meta'][k]['hit'] for k in rec['keys']]
            assert rec['scalars']['attn_in_box'] == pytest.approx(np.mean(hits))
    acc = _tb_events(tmp_path)
    steps = [e.step for e in acc.Scalars('mmattnvis/attn_in_box')]
    assert steps == [1, 2]
    figs = [p for p in os.listdir(store.root) if p.endswith('_evolution.png')]
    assert len(figs) == 2


def test_matching_keeps_each_object_when_predictions_reorder():
    from mmattnvis.hooks.evolution import match_to_ground_truth
    gt = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 0, 60, 30]], np.float32)
    preds = np.array([[21, 19, 41, 40], [50, 1, 60, 29], [0, 0, 9, 11], [100, 100, 110, 110]],
                     np.float32)
    m1 = match_to_ground_truth(gt, preds)
    order = [3, 1, 2, 0]  # the same predictions, another query order
    m2 = match_to_ground_truth(gt, preds[order])
    assert [g for g, _, _ in m1] == [0, 1, 2] == [g for g, _, _ in m2]
    assert [p for _, p, _ in m1] == [2, 0, 1]
    assert [order[p] for _, p, _ in m2] == [2, 0, 1]
    assert all(iou > 0.7 for _, _, iou in m1)


class ValBoom(Hook):
    priority = 'LOWEST'

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        raise RuntimeError('boom in val')


def test_hooks_removed_when_validation_fails_during_training(data, tmp_path):
    train, val = data
    runner = Runner.from_cfg(train_cfg(RETINA, train, val, tmp_path, [FEAT], epochs=1))
    runner.register_hook(ValBoom(), 'LOWEST')
    with pytest.raises(RuntimeError, match='boom in val'):
        runner.train()
    assert hook_count(_model(runner)) == 0
    assert 'run' not in runner.val_loop.__dict__


def test_test_never_builds_the_train_loop(tmp_path):
    """runner.test() with a hook when the config's train annotations do not exist."""
    root, ann = make_dataset(tmp_path / 'data', num_images=2, seed=3)
    cfg = runner_cfg(RETINA, root, ann, tmp_path / 'w', custom_hooks=[
        dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'], interval=1,
             out_dir='vis')])
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dict(type='CocoDataset', data_root=str(tmp_path / 'nowhere'),
                     ann_file='instances_train2017.json', data_prefix=dict(img='train/'),
                     pipeline=[dict(type='LoadImageFromFile')]))
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert 'coco/bbox_mAP' in metrics
    assert len(os.listdir(tmp_path / 'w' / 'vis' / 'test')) == 2 * 5
    assert isinstance(runner._train_loop, dict)  # still the config: never built


def test_tools_val_with_relative_out_dir(tmp_path):
    """tools/val.py runs runner.val(); --out-dir, like a relative out_dir, lies under work_dir."""
    import subprocess
    import sys
    root, ann = make_dataset(tmp_path / 'data', num_images=3, seed=4)
    cfg = runner_cfg(RETINA, root, ann, tmp_path / 'w', batch_size=1, custom_hooks=[
        dict(type='mmattnvis.FeatMapVisHook', target_layers=['backbone.layer4'], interval=2)])
    cfg.val_dataloader = cfg.test_dataloader
    cfg.val_evaluator = cfg.test_evaluator
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg.pop(key)
    cfg.dump(str(tmp_path / 'cfg.py'))
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'val.py'),
                           str(tmp_path / 'cfg.py'), 'none', '--work-dir', str(tmp_path / 'w'),
                           '--out-dir', 'rel'], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / 'w' / 'rel' / 'val')) == sorted(
        f'{osp.splitext(n)[0]}_id{i}_backbone.layer4.png' for i, n in ((1, '0004_00000.png'),
                                                                     (3, '0004_00002.png')))
    assert not (tmp_path / 'rel').exists()


@pytest.mark.parametrize('kind', ['gif', 'mp4'])
def test_evolution_video_from_saved_records(tmp_path, kind):
    """build_evolution rebuilds figure and video from records alone (no model, no runner)."""
    if kind == 'mp4':
        pytest.importorskip('imageio_ffmpeg', reason='mp4 needs imageio-ffmpeg')
    import imageio.v2 as imageio

    from mmattnvis.hooks.evolution import EvolutionStore, build_evolution
    store = EvolutionStore(str(tmp_path), 'FeatMapVisHook')
    for epoch in (1, 2, 3):
        cell = np.full((60, 80, 3), 60 * epoch, np.uint8)
        store.save('img_id1', epoch, {'rows': [('neck.0', 'neck.0', cell)],
                                      'scalars': {'attn_in_box': epoch / 4}})
    written = build_evolution(str(tmp_path), cell_width=80, video=kind)
    assert [osp.basename(p) for p in written] == ['img_id1_featmap_evolution.png',
                                                   f'img_id1_featmap_evolution.{kind}']
    if kind == 'gif':
        frames = imageio.mimread(written[1])
    else:
        import imageio_ffmpeg
        gen = imageio_ffmpeg.read_frames(written[1])
        size = next(gen)['size']
        frames = [np.frombuffer(f, np.uint8).reshape(size[1], size[0], 3) for f in gen]
    assert len(frames) == 3
    # each frame shows its epoch's cell: brightness rises with the epoch
    means = [float(f[40:80, 10:70].mean()) for f in frames]
    assert means[0] < means[1] < means[2]
    with pytest.raises(Exception, match='no evolution records'):
        build_evolution(str(tmp_path / 'nothing'))
