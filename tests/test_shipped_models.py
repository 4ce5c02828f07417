"""The shipped shapes models reach their model cards' bars on a held-out sample (seed 2)."""
import os.path as osp

import pytest
from mmengine.runner import Runner

from conftest import ROOT
from mmattnvis.apis.model import load_config
from mmattnvis.datasets import generate_shapes_dataset
from mmattnvis.utils.checkpoint import load_checkpoint_safely, read_checkpoint

MODELS = {
    'yolov5_n_shapes': 0.9,
    'retinanet_r18w32_fpn_shapes': 0.9,
}


@pytest.fixture(scope='module')
def heldout(tmp_path_factory):
    root = tmp_path_factory.mktemp('heldout')
    ann = generate_shapes_dataset(str(root / 'test'), num_images=48, seed=2)
    return str(root), ann


@pytest.mark.parametrize('name,bar', list(MODELS.items()))
def test_heldout_map50(name, bar, heldout, tmp_path):
    root, ann = heldout
    weights = osp.join(ROOT, 'models', 'shapes', name, 'weights.pth')
    ckpt = read_checkpoint(weights)  # weights-only load
    assert ckpt['meta']['dataset_meta']['classes'] == ['circle', 'square', 'triangle', 'star']
    cfg = load_config(osp.join(ROOT, 'configs', 'shapes', f'{name}.py'))
    cfg.test_dataloader.dataset.data_root = root + '/'
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.test_evaluator.ann_file = ann
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    cfg.custom_hooks = []
    cfg.visualizer = dict(type='mmdet.DetLocalVisualizer', name=f'vis_{name}')
    runner = Runner.from_cfg(cfg)
    load_checkpoint_safely(runner.model, weights)
    metrics = runner.test()
    assert metrics['coco/bbox_mAP_50'] >= bar, metrics
