"""FeatMapVisHook inside runner.test(): same predictions and metrics, flat memory, cleanup."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import RETINANET_CONFIG, ROOT, YOLOV5N_CONFIG, hook_count
from runner_utils import make_dataset, runner_cfg


@pytest.fixture(scope='module')
def shapes_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp('shapes'), num_images=6, seed=11)


class Probe(Hook):
    """Records predictions, hook counts and what the capture holds after every iteration."""
    priority = 'LOWEST'

    def __init__(self, raise_at=None):
        self.preds, self.held, self.iters = [], [], 0
        self.raise_at = raise_at

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self.iters += 1
        if self.raise_at is not None and batch_idx == self.raise_at:
            raise RuntimeError('boom')

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for s in outputs:
            p = s.pred_instances
            self.preds.append((p.bboxes.clone(), p.scores.clone(), p.labels.clone()))
        vis = [h for h in runner.hooks if type(h).__name__ == 'FeatMapVisHook']
        if vis and vis[0]._capture is not None:
            recs = vis[0]._capture.records
            self.held.append(sum(t.numel() for calls in recs.values() for flat in calls
                                 for t in flat.values()))


def _hook_count(model):
    return hook_count(model.module if hasattr(model, 'module') else model)


def _run(cfg, probe):
    runner = Runner.from_cfg(cfg)
    runner.register_hook(probe, 'LOWEST')
    metrics = runner.test()
    return runner, metrics


FEAT_HOOK = dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'],
                 channel_reduction='squeeze_mean', interval=1, out_dir='vis')


@pytest.mark.parametrize('config', [RETINANET_CONFIG, YOLOV5N_CONFIG])
def test_hook_keeps_predictions_and_metrics(config, shapes_data, tmp_path):
    root, ann = shapes_data
    base = runner_cfg(config, root, ann, tmp_path / 'a')
    probe_a = Probe()
    runner_a, metrics_a = _run(base, probe_a)
    hooked = runner_cfg(config, root, ann, tmp_path / 'b', custom_hooks=[FEAT_HOOK])
    probe_b = Probe()
    runner_b, metrics_b = _run(hooked, probe_b)
    assert metrics_a == metrics_b
    assert len(probe_a.preds) == len(probe_b.preds) == 6
    for (ba, sa, la), (bb, sb, lb) in zip(probe_a.preds, probe_b.preds):
        assert torch.equal(ba, bb) and torch.equal(sa, sb) and torch.equal(la, lb)
    # every sample of every batch drawn, one image per FPN level, names per image and layer
    out = tmp_path / 'b' / 'vis' / 'test'
    files = sorted(os.listdir(out))
    levels = 5 if config == RETINANET_CONFIG else 3
    assert len(files) == 6 * levels
    assert any(f.endswith('_neck.0.png') for f in files)
    import cv2
    first = cv2.imread(str(out / files[0]))
    assert first is not None and first.std() > 5
    # the same images reached the runner visualizer's LocalVisBackend
    vis_dirs = [d for d, _, names in os.walk(tmp_path / 'b') if d.endswith('vis_image')]
    assert vis_dirs and len(os.listdir(vis_dirs[0])) == 6 * levels
    assert _hook_count(runner_b.model) == 0  # everything removed after the loop
    assert all(h == 0 for h in probe_b.held)  # drawn tensors released at once


def test_interval_and_max_samples(shapes_data, tmp_path):
    root, ann = shapes_data
    hook = dict(FEAT_HOOK, interval=2, max_samples=3, target_layers=['backbone.stage4'])
    cfg = runner_cfg(YOLOV5N_CONFIG, root, ann, tmp_path, custom_hooks=[hook], batch_size=1)
    _run(cfg, Probe())
    files = sorted(os.listdir(tmp_path / 'vis' / 'test'))
    # iterations 0, 2, 4 are drawn, one sample each, capped at 3
    assert len(files) == 3 and all(f.endswith('_backbone.stage4.png') for f in files)


def test_hooks_removed_when_loop_fails(shapes_data, tmp_path):
    root, ann = shapes_data
    cfg = runner_cfg(YOLOV5N_CONFIG, root, ann, tmp_path, custom_hooks=[FEAT_HOOK],
                     batch_size=1)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(Probe(raise_at=2), 'LOWEST')
    with pytest.raises(RuntimeError, match='boom'):
        runner.test()
    assert _hook_count(runner.model) == 0
    assert 'run' not in runner.test_loop.__dict__  # the loop's run is its own again


@pytest.mark.parametrize('field,value,message', [
    ('target_layers', ['neck.nope'], "FeatMapVisHook.target_layers: unknown layer 'neck.nope'"),
    ('channel_reduction', 'mean', 'FeatMapVisHook.channel_reduction: unknown channel_reduction'),
    ('interval', 0, 'FeatMapVisHook.interval: must be a positive integer'),
    ('arrangement', (1, 1), 'FeatMapVisHook.arrangement:'),
])
def test_bad_values_fail_before_any_data(field, value, message, shapes_data, tmp_path):
    root, ann = shapes_data
    hook = dict(FEAT_HOOK, **{field: value})
    if field == 'arrangement':
        hook.update(channel_reduction=None, topk=4)
    cfg = runner_cfg(YOLOV5N_CONFIG, root, ann, tmp_path, custom_hooks=[hook])
    probe = Probe()
    with pytest.raises(ValueError) as err:
        _run(cfg, probe)
    assert message in str(err.value) and '\n' not in str(err.value)
    assert probe.iters == 0


def test_memory_flat_over_100_iterations(tmp_path):
    root, ann = make_dataset(tmp_path / 'data', num_images=100, seed=5)
    hook = dict(FEAT_HOOK, target_layers=['backbone.stem'], out_dir=None)
    cfg = runner_cfg(YOLOV5N_CONFIG, root, ann, tmp_path / 'w', custom_hooks=[hook],
                     batch_size=1, scale=320)
    cfg.visualizer.vis_backends = []  # measure the hook, not PNG writing

    rss = []

    class RssProbe(Probe):

        def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            super().after_test_iter(runner, batch_idx, data_batch, outputs)
            with open('/proc/self/statm') as f:
                rss.append(int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE'))

    _run(cfg, Probe())  # warm-up: allocator and caches reach their steady size
    probe = RssProbe()
    _run(cfg, probe)
    assert len(rss) == 100 and all(h == 0 for h in probe.held)
    # a leak of the captured stem maps (16x160x160 floats, 1.6 MB a sample) would add >100 MB
    growth = (np.median(rss[-10:]) - np.median(rss[10:20])) / 2**20
    assert growth < 40, f'RSS grew {growth:.1f} MiB over 80 iterations'


def test_tensorboard_backend_receives_images(shapes_data, tmp_path):
    pytest.importorskip('tensorboard')
    root, ann = shapes_data
    hook = dict(FEAT_HOOK, out_dir=None, max_samples=2)
    cfg = runner_cfg(YOLOV5N_CONFIG, root, ann, tmp_path, custom_hooks=[hook],
                     vis_backends=[dict(type='TensorboardVisBackend')])
    _run(cfg, Probe())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    event_dirs = {d for d, _, names in os.walk(tmp_path) if any('tfevents' in n for n in names)}
    assert event_dirs
    acc = EventAccumulator(event_dirs.pop(), size_guidance={'images': 0})
    acc.Reload()
    tags = acc.Tags()['images']
    assert len(tags) == 2 * 3 and all('_neck.' in t for t in tags)


def test_custom_hooks_resolve_without_import(tmp_path):
    code = ('from mmengine.registry import HOOKS, VISUALIZERS, DefaultScope\n'
            'DefaultScope.get_instance("t", scope_name="mmdet")\n'
            'h = HOOKS.build(dict(type="mmattnvis.FeatMapVisHook", target_layers=["neck"]))\n'
            'v = VISUALIZERS.build(dict(type="mmattnvis.FeatMapVisualizer", name="v"))\n'
            'print(type(h).__module__, type(v).__name__)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'mmattnvis.hooks.featmap_hook FeatMapVisualizer' in proc.stdout


def _random_checkpoint(path):
    from mmattnvis.apis import init_model
    model = init_model(YOLOV5N_CONFIG, None, cfg_options={
        'model.bbox_head.head_module.num_classes': 4})
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def _shipped_cfg_file(tmp_path, root, ann, **hook_changes):
    cfg = runner_cfg(osp.join(ROOT, 'configs/featmap/yolov5_n_neck_featmap.py'), root, ann,
                     tmp_path / 'w', batch_size=1)
    assert cfg.custom_hooks[0]['type'] == 'mmattnvis.FeatMapVisHook'
    cfg.custom_hooks[0].update(hook_changes)
    path = tmp_path / 'cfg.py'
    cfg.dump(str(path))
    return str(path)


def test_tools_test_with_shipped_config(shapes_data, tmp_path):
    root, ann = shapes_data
    cfg_path = _shipped_cfg_file(tmp_path, root, ann, interval=2, max_samples=None)
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), cfg_path,
                           _random_checkpoint(tmp_path / 'random.pth'), '--out-dir',
                           str(tmp_path / 'vis')], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = os.listdir(tmp_path / 'vis' / 'test')
    assert len(files) == 3 * 3  # iterations 0, 2, 4 of 6, three neck levels each
    bad = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), cfg_path,
                          str(tmp_path / 'missing.pth')], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        f"error: checkpoint not found: {tmp_path / 'missing.pth'}")


def test_runner_val_draws_too(shapes_data, tmp_path):
    root, ann = shapes_data
    cfg = runner_cfg(YOLOV5N_CONFIG, root, ann, tmp_path, custom_hooks=[
        dict(FEAT_HOOK, max_samples=2)])
    cfg.val_dataloader = cfg.test_dataloader
    cfg.val_evaluator = cfg.test_evaluator
    cfg.val_cfg = dict(type='ValLoop')
    runner = Runner.from_cfg(cfg)
    metrics = runner.val()
    assert 'coco/bbox_mAP' in metrics
    files = os.listdir(tmp_path / 'vis' / 'val')
    assert len(files) == 2 * 3
    assert _hook_count(runner.model) == 0


def test_cpu_process_group_is_ended_before_interpreter_shutdown(tmp_path):
    """The gloo group the tools start is destroyed by an exit handler; left to interpreter
    teardown, gloo's threads can abort a finished run (SIGABRT, reported by torchrun)."""
    script = tmp_path / 'pg.py'
    script.write_text(
        'import atexit, torch.distributed as dist\n'
        'from mmengine.config import Config\n'
        'from mmattnvis.utils.dist import prepare_cpu_distributed\n'
        "cfg = Config(dict(launcher='pytorch'))\n"
        'assert prepare_cpu_distributed(cfg) and dist.is_initialized()\n'
        "assert cfg.model_wrapper_cfg['type'] == 'mmattnvis.CPUFriendlyDDP'\n"
        'atexit._run_exitfuncs()\n'
        "print('initialized after exit handlers:', dist.is_initialized())\n")
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'initialized after exit handlers: False' in proc.stdout
