"""The shipped shapes models reach their model cards' bars on a held-out sample (seed 2)."""
import os
import os.path as osp

import pytest
from mmengine.runner import Runner

from mmattnvis.apis.model import load_config
from mmattnvis.datasets import generate_shapes_dataset
from mmattnvis.utils.checkpoint import load_checkpoint_safely, read_checkpoint

from conftest import ROOT

MODELS = {
    'yolov5_n_shapes': 0.9,
    'retinanet_r18w32_fpn_shapes': 0.9,
    'dino_slim_shapes': 0.8,
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


def test_dino_cross_attention_peaks_inside_its_box(heldout):
    """The issue's bar: for >= 90 % of detections, the last decoder layer's cross-attention of
    the query (head-averaged sampling weights) peaks inside the query's predicted box."""
    from mmattnvis.apis import build_test_pipeline, init_model, load_image, prepare_batch
    from mmattnvis.apis.attention_pointing import cross_attention_pointing
    root, _ = heldout
    name = 'dino_slim_shapes'
    model = init_model(osp.join(ROOT, 'configs', 'shapes', f'{name}.py'),
                       osp.join(ROOT, 'models', 'shapes', name, 'weights.pth'))
    images = sorted(osp.join(root, 'test', 'images', f)
                    for f in os.listdir(osp.join(root, 'test', 'images')))[:16]
    pipeline = build_test_pipeline(model.cfg)
    hits = []
    for start in range(0, len(images), 8):
        chunk = images[start:start + 8]
        data = prepare_batch([load_image(p) for p in chunk], pipeline, chunk)
        hits += [hit for _, hit in cross_attention_pointing(model, data, score_thr=0.3)]
    assert len(hits) >= 20
    assert sum(hits) / len(hits) >= 0.9, f'{sum(hits)}/{len(hits)}'
