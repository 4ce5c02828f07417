"""The CLI and the hook share one Run: the same image and options give identical records."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmattnvis.sinks import load_results
from mmattnvis.utils.package_data import shipped_model

from runner_utils import assert_same_row, make_dataset, runner_cfg


def _runner_and_files(name, tmp_path, hook, with_mask=False):
    """A test runner of the shipped ``name`` model on fresh shapes images with ``hook``, and
    the config + checkpoint files that give the CLI the same model and test pipeline
    (``with_mask``: the test pipeline loads the objects' masks too)."""
    config, weights = shipped_model(name)
    root, ann = make_dataset(tmp_path / 'data', num_images=3, seed=5)
    cfg = runner_cfg(config, root, ann, tmp_path / 'work', custom_hooks=[hook], batch_size=1,
                     scale=256)
    if with_mask:
        for t in cfg.test_dataloader.dataset.pipeline:
            if t['type'].endswith('LoadAnnotations'):
                t['with_mask'] = True
    cfg.load_from = weights
    runner = Runner.from_cfg(cfg)
    runner.test()
    cfg_path = str(tmp_path / 'model_cfg.py')
    runner.cfg.dump(cfg_path)
    ckpt = str(tmp_path / 'model.pth')
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return osp.join(root, 'images'), cfg_path, ckpt


def _compare(hook_dir, cli_dir, task):
    hook_index, hook_records = load_results(hook_dir)
    cli_index, cli_records = load_results(cli_dir)
    assert hook_index['task'] == cli_index['task'] == task
    by_image = {osp.basename(r.image_path): r for r in cli_records}
    assert len(hook_records) == len(cli_records) == 3
    compared = 0
    for h in hook_records:
        c = by_image[osp.basename(h.image_path)]
        assert h.geometry == c.geometry
        assert [(d.label, d.rank) for d in h.detections] == [(d.label, d.rank) for d in
                                                             c.detections]
        for dh, dc in zip(h.detections, c.detections):
            np.testing.assert_allclose(dh.bbox, dc.bbox, atol=1e-3)
        assert list(h.maps) == list(c.maps)
        for key in h.maps:
            assert h.maps[key].meta.get('layer') == c.maps[key].meta.get('layer')
            np.testing.assert_allclose(h.maps[key].data, c.maps[key].data, rtol=1e-5,
                                       atol=1e-5)
            compared += 1
    return compared


def test_featmap_cli_and_hook_give_identical_maps(tmp_path):
    from mmattnvis.cli.featmap_vis import main
    hook = dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'],
                channel_reduction='squeeze_mean', interval=1, results_dir='res', score_thr=0.3,
                report_dir='rep')
    images, cfg_path, ckpt = _runner_and_files('yolov5_n_shapes', tmp_path, hook)
    assert main([images, cfg_path, ckpt, '--target-layers', 'neck', '--channel-reduction',
                 'squeeze_mean', '--device', 'cpu', '--out-dir', str(tmp_path / 'png'),
                 '--save-results', str(tmp_path / 'cli')]) == 0
    n = _compare(str(tmp_path / 'work' / 'res' / 'test'), str(tmp_path / 'cli'), 'featmap')
    assert n == 3 * 3  # three images, three FPN levels
    # the hook's report of the test loop: one card per drawn image
    text = (tmp_path / 'work' / 'rep' / 'test' / 'data' / 'index.js').read_text()
    page = json.loads(text[text.index('=') + 1:].strip().rstrip(';'))
    assert page['task'] == 'featmap' and page['layers'] == ['neck.0', 'neck.1', 'neck.2']
    assert sorted(im['name'] for im in page['images']) == sorted(os.listdir(images))
    assert all(im['maps'] == 3 for im in page['images'])
    saved = sorted(os.listdir(tmp_path / 'work' / 'res' / 'test' / 'records'))
    assert sorted({f.rsplit('_id', 1)[0] for f in saved}) == sorted(
        osp.splitext(n)[0] for n in os.listdir(images))
    assert len(saved) == 2 * 3 and {osp.splitext(f)[1] for f in saved} == {'.json', '.npz'}


def test_attention_cli_and_hook_give_identical_maps(tmp_path):
    from mmattnvis.cli.attn_vis import main
    hook = dict(type='mmattnvis.AttentionVisHook', mode='deformable', interval=1,
                results_dir='res', score_thr=0.3, max_queries=3)
    images, cfg_path, ckpt = _runner_and_files('dino_slim_shapes', tmp_path, hook)
    assert main([images, cfg_path, ckpt, '--mode', 'deformable', '--max-queries', '3',
                 '--device', 'cpu', '--out-dir', str(tmp_path / 'png'),
                 '--save-results', str(tmp_path / 'cli')]) == 0
    n = _compare(str(tmp_path / 'work' / 'res' / 'test'), str(tmp_path / 'cli'), 'attention')
    assert n >= 3  # the trained model finds objects on every image


def _explain(task, **fields):
    return dict(type='mmattnvis.ExplainHook', task=task, interval=1, results_dir='res',
                **fields)


DRISE_FLAGS = ['--method', 'drise', '--topk', '2', '--drise-masks', '16', '--drise-grid', '4',
               '--drise-batch', '8', '--seed', '3']
CAM_CASES = {  # case: (task, hook fields, CLI flags)
    'cam': ('cam', dict(method=['gradcam'], target_layers=['neck'], topk=2),
            ['--method', 'gradcam', '--target-layers', 'neck', '--topk', '2']),
    'odam': ('odam', dict(target_layers=['neck'], topk=2),
             ['--method', 'odam', '--target-layers', 'neck', '--topk', '2']),
    'drise': ('drise', dict(topk=2, drise_masks=16, drise_grid=4, drise_batch=8, seed=3),
              DRISE_FLAGS),
    'drise-box': ('drise', dict(topk=2, drise_masks=16, drise_grid=4, drise_batch=8, seed=3,
                                drise_region='box'), DRISE_FLAGS + ['--drise-region', 'box']),
    'occlusion': ('occlusion', dict(topk=2, occlusion_grid=3, drise_batch=8),
                  ['--method', 'occlusion', '--topk', '2', '--occlusion-grid', '3',
                   '--drise-batch', '8']),
}


@pytest.mark.parametrize('case', sorted(CAM_CASES))
def test_explainer_cli_and_hook_give_identical_maps(case, tmp_path):
    from mmattnvis.cli.cam_vis import main
    task, fields, flags = CAM_CASES[case]
    images, cfg_path, ckpt = _runner_and_files('yolov5_n_shapes', tmp_path,
                                               _explain(task, draw=False, **fields))
    assert main([images, cfg_path, ckpt, *flags, '--device', 'cpu', '--out-dir',
                 str(tmp_path / 'png'), '--save-results', str(tmp_path / 'cli')]) == 0
    n = _compare(str(tmp_path / 'work' / 'res' / 'test'), str(tmp_path / 'cli'), 'cam')
    assert n >= 3  # the trained model finds objects on every image
    if fields.get('drise_region'):  # the hook's maps are the box's too
        _, records = load_results(str(tmp_path / 'work' / 'res' / 'test'))
        metas = [m.meta for r in records for m in r.maps.values() if 'rank' in m.meta]
        assert metas and all(m['region'] == 'box' and m['box_masks'] for m in metas)
    if fields.get('occlusion_grid'):  # the hook's grid is the one given
        _, records = load_results(str(tmp_path / 'work' / 'res' / 'test'))
        metas = [m.meta for r in records for m in r.maps.values() if 'rank' in m.meta]
        assert metas and all(m['method'] == 'occlusion' and m['grid'] == 3 for m in metas)


def test_ablation_cli_and_hook_give_identical_records(tmp_path):
    from mmattnvis.cli.head_ablation import main
    images, cfg_path, ckpt = _runner_and_files('dino_slim_shapes', tmp_path,
                                               _explain('ablation', part='decoder_cross'))
    assert main([images, cfg_path, ckpt, '--device', 'cpu', '--out-dir',
                 str(tmp_path / 'png'), '--save-results', str(tmp_path / 'cli')]) == 0
    _compare(str(tmp_path / 'work' / 'res' / 'test'), str(tmp_path / 'cli'), 'ablation')
    _, hook_records = load_results(str(tmp_path / 'work' / 'res' / 'test'))
    _, cli_records = load_results(str(tmp_path / 'cli'))
    cli = {osp.basename(r.image_path): r for r in cli_records}
    for h in hook_records:
        hs, cs = h.info['settings'], cli[osp.basename(h.image_path)].info['settings']
        assert [s['name'] for s in hs] == [s['name'] for s in cs] and len(hs) > 2
        for a, b in zip(hs, cs):
            assert a['heads_off'] == b['heads_off']
            assert {k: v for k, v in a['row'].items() if not isinstance(v, float)} == {
                k: v for k, v in b['row'].items() if not isinstance(v, float)}
            assert [d['label'] for d in a['detections']] == [d['label'] for d in b['detections']]


def test_faithfulness_cli_and_hook_give_identical_rows(tmp_path):
    from mmattnvis.cli.eval_faithfulness import main
    fields = dict(method=['gradcam'], target_layers=['neck'], topk=1, steps=3, no_insertion=True,
                  baselines=['random', 'box'], box_curves=True)
    images, cfg_path, ckpt = _runner_and_files('yolov5_n_shapes', tmp_path,
                                               _explain('faithfulness', draw=False, **fields),
                                               with_mask=True)  # Mask-IoU in the hook too
    assert main([cfg_path, ckpt, '--data', osp.dirname(images), '--methods', 'gradcam',
                 '--target-layers', 'neck', '--topk', '1', '--steps', '3', '--no-insertion',
                 '--baselines', 'random', 'box', '--box-curves',
                 '--device', 'cpu', '--out-dir', str(tmp_path / 'table'), '--save-results',
                 str(tmp_path / 'cli')]) == 0
    n = _compare(str(tmp_path / 'work' / 'res' / 'test'), str(tmp_path / 'cli'), 'faithfulness')
    assert n >= 3 * 3  # gradcam and the random and box baselines per detection
    hook_index, hook_records = load_results(str(tmp_path / 'work' / 'res' / 'test'))
    _, cli_records = load_results(str(tmp_path / 'cli'))
    rows = {r['image'] + r['method']: r for c in cli_records for r in c.info['rows']}
    hook_rows = [r for h in hook_records for r in h.info['rows']]
    assert len(hook_rows) == len(rows) >= 9
    assert {r['method'] for r in hook_rows} == {'gradcam', 'random', 'box'}
    assert all(r['box_deletion_auc'] is not None and r['box_insertion_auc'] is None
               for r in hook_rows)  # in-box deletion in the hook too (insertion off)
    for r in hook_rows:
        assert_same_row(r, rows[r['image'] + r['method']], 1e-6)
    assert any(r['pointing_game_gt'] is not None for r in hook_rows)
    assert all(r['mask_iou'] is not None for r in hook_rows if r['pointing_game_gt'] is not None)
    assert 'gradcam/pointing_game' in hook_index['info']['summary']
