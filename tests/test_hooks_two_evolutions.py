"""Two hooks in one training config (issue 24.6): each keeps its own evolution figure, on disk,
in the LocalVisBackend's ``vis_image/`` and as its own TensorBoard tag."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import pytest

from conftest import ROOT
from runner_utils import make_dataset, train_cfg

DINO = osp.join(ROOT, 'configs/shapes/dino_slim_shapes.py')
HOOKS = [
    dict(type='mmattnvis.FeatMapVisHook', target_layers=['backbone.layer4'], out_dir='vis',
         fixed_samples=1),
    dict(type='mmattnvis.AttentionVisHook', mode='deformable', out_dir='vis', fixed_samples=1,
         score_thr=0.0, max_queries=2),
]


def test_two_hooks_keep_their_own_evolution_figure(tmp_path):
    pytest.importorskip('tensorboard')
    train = make_dataset(tmp_path / 'train', num_images=2, seed=31)
    val = make_dataset(tmp_path / 'val', num_images=1, seed=32)
    work = tmp_path / 'work'
    cfg = train_cfg(DINO, train, val, work, HOOKS, epochs=1, vis_backends=[
        dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
    cfg.dump(str(tmp_path / 'two_hooks.py'))
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'),
                           str(tmp_path / 'two_hooks.py'), '--work-dir', str(work)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # the LocalVisBackend keeps one file per name and step: both figures survive
    vis_images = [f for d, _, names in os.walk(work) if d.endswith('vis_image')
                  for f in names]
    evo = sorted(f for f in vis_images if '_evolution' in f)
    assert len(evo) == 2, evo
    assert any('_featmap_evolution' in f for f in evo)
    assert any('_attention_evolution' in f for f in evo)
    # each is its hook's figure: the feature-map one has one row (backbone.layer4), the attention
    # one a row per ground-truth object; they differ in content and size
    dirs = [d for d, _, names in os.walk(work) if d.endswith('vis_image')]
    a, b = (cv2.imread(osp.join(dirs[0], f)) for f in evo)
    assert a.shape != b.shape or (a != b).any()
    # the hooks' own folders name the task too: <tag>_<task>_evolution.png
    tag = evo[0].split('_attention_evolution')[0]
    for hook, task in (('FeatMapVisHook', 'featmap'), ('AttentionVisHook', 'attention')):
        root = work / 'vis' / 'evolution' / hook
        assert [p for p in os.listdir(root) if p.endswith('.png')] == [
            f'{tag}_{task}_evolution.png']

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tb = {d for d, _, names in os.walk(work) if any('tfevents' in n for n in names)}
    acc = EventAccumulator(tb.pop(), size_guidance={'images': 0})
    acc.Reload()
    tags = [t for t in acc.Tags()['images'] if t.endswith('_evolution')]
    assert sorted(t.rsplit('_', 2)[1] for t in tags) == ['attention', 'featmap']
    assert all(len(acc.Images(t)) == 1 for t in tags)  # one image per tag and step
