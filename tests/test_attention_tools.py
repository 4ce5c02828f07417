"""tools/attn_vis.py, tools/head_ablation.py and AttentionVisHook on small DETR-family models."""
import csv
import os

import cv2
import pytest
from mmengine.runner import Runner

from mmattnvis.cli import (
    attn_vis,  # noqa: E402
    head_ablation,  # noqa: E402
)

from conftest import YOLOV5N_CONFIG, square_image
from detr_utils import DETR_FAMILY
from runner_utils import make_dataset, runner_cfg


def small_opts(name, scale=160):
    deformable = name in ('deformable_detr', 'dino')
    opts = ['model.backbone.depth=18',
            f"model.neck.in_channels={'[128,256,512]' if deformable else '[512]'}",
            'model.encoder.num_layers=2', 'model.decoder.num_layers=2', 'model.num_queries=20',
            'model.test_cfg.max_per_img=20',
            f'test_dataloader.dataset.pipeline.1.scale=({scale},{scale})']
    return ['--cfg-options'] + opts


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('img') / 'sq.png'
    cv2.imwrite(str(path), square_image(120, 180, (40, 30, 100, 90)))
    return path


def _run(mod, args, capfd):
    rc = mod.main([str(a) for a in args])
    out, err = capfd.readouterr()
    return rc, out, err


@pytest.mark.parametrize('name,mode,extra,rows', [
    ('detr', 'decoder', ['--layers', '0', '-1', '--head-fusion', 'mean'], 3),
    ('detr', 'decoder', ['--head-fusion', 'none', '--heads', '0', '3'], 3),
    ('detr', 'encoder', ['--points', '50,40', '150,100'], 2),
    ('detr', 'relevance', [], 4),
    ('dab_detr', 'decoder', [], 2),
    ('dino', 'deformable', ['--layers', '0', '1'], 3),
    ('deformable_detr', 'encoder', ['--points', '60,60'], 2),
])
def test_attn_vis_modes(name, mode, extra, rows, image, tmp_path, capfd):
    out_dir = tmp_path / 'o'
    rc, out, err = _run(attn_vis, [image, DETR_FAMILY[name], 'none', '--mode', mode,
                                   '--score-thr', '0', '--max-queries', '2', '--device', 'cpu',
                                   '--cell-width', '120', '--out-dir', out_dir] + extra +
                        small_opts(name), capfd)
    assert rc == 0, err
    fig = cv2.imread(str(out_dir / 'sq.png'))
    cell_h = round(120 * 120 / 180)
    cols = extra.count('--points') and len(extra) - 1 or 2  # encoder: a column per point
    assert fig.shape[1] == cols * 120 + (cols - 1) * 3
    # a title strip, then `rows` rows of cells (header + maps)
    assert fig.shape[0] > rows * cell_h + (rows - 1) * 3
    assert fig.shape[0] < (rows + 1) * cell_h + rows * 3 + 40


@pytest.mark.parametrize('args,message', [
    ([YOLOV5N_CONFIG, 'none', '--mode', 'decoder'], 'is not a DETR-family detector'),
    ([DETR_FAMILY['detr'], 'none', '--mode', 'deformable'], 'use --mode decoder'),
    ([DETR_FAMILY['dino'], 'none', '--mode', 'decoder'], 'use --mode deformable'),
    ([DETR_FAMILY['detr'], 'none', '--mode', 'encoder'], 'needs reference points'),
    ([DETR_FAMILY['detr'], 'none', '--mode', 'encoder', '--points', '5;5'], 'bad point'),
    ([DETR_FAMILY['detr'], 'none', '--layers', '7'], 'layer 7 does not exist'),
])
def test_attn_vis_errors(args, message, image, tmp_path, capfd):
    name = 'dino' if 'dino' in args[0] else 'detr'
    extra = [] if 'yolov5' in args[0] else small_opts(name)
    rc, out, err = _run(attn_vis, [image] + args + ['--device', 'cpu', '--out-dir',
                                                    tmp_path / 'o'] + extra, capfd)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / 'o').exists()


def test_zero_detections_writes_a_note(image, tmp_path, capfd):
    rc, out, err = _run(attn_vis, [image, DETR_FAMILY['detr'], 'none', '--score-thr', '0.999',
                                   '--device', 'cpu', '--out-dir', tmp_path] +
                        small_opts('detr'), capfd)
    assert rc == 0, err
    img = cv2.imread(str(tmp_path / 'sq.png'))
    assert img is not None and img.shape[1] == 320


def test_head_ablation_tool_table(image, tmp_path, capfd):
    rc, out, err = _run(head_ablation, [image, DETR_FAMILY['detr'], 'none', '--score-thr', '0',
                                        '--device', 'cpu', '--out-dir', tmp_path,
                                        '--cell-width', '100'] + small_opts('detr'), capfd)
    assert rc == 0, err
    with open(tmp_path / 'sq_ablation.csv') as f:
        rows = list(csv.DictReader(f))
    names = [r['variant'] for r in rows]
    assert names == ['all heads on'] + [f'first {k} off' for k in range(1, 9)] + [
        f'head {h} off' for h in range(8)]
    base = rows[0]
    assert base['kept'] == base['detections'] == '20' and base['lost'] == '0'
    for r in rows:  # every prediction is either kept or lost, and kept+gained = detections
        assert int(r['kept']) + int(r['lost']) == 20
        assert int(r['kept']) + int(r['gained']) == int(r['detections'])
    assert any(int(r['lost']) > 0 or float(r['mean_score_change']) != 0 for r in rows[1:])
    assert 'first 8 off' in out  # the table is printed too
    panel = cv2.imread(str(tmp_path / 'sq_ablation.png'))
    assert panel.shape[1] == 4 * 100 + 3 * 3


def test_attention_hook_in_runner(tmp_path):
    from mmattnvis.apis.model import load_config
    root, ann = make_dataset(tmp_path / 'data', num_images=4, seed=3)
    cfg = load_config(DETR_FAMILY['detr'], {
        'model.backbone.depth': 18, 'model.neck.in_channels': [512],
        'model.encoder.num_layers': 2, 'model.decoder.num_layers': 2, 'model.num_queries': 20,
        'model.test_cfg.max_per_img': 20})
    hook = dict(type='mmattnvis.AttentionVisHook', layers=[-1], score_thr=0.0, max_queries=3,
                cell_width=100, interval=1, out_dir='vis')
    cfg = runner_cfg(cfg, root, ann, tmp_path / 'w', custom_hooks=[hook], scale=160)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert 'coco/bbox_mAP' in metrics
    files = sorted(os.listdir(tmp_path / 'w' / 'vis' / 'test'))
    assert len(files) == 4 and all(f.endswith('_attention.png') for f in files)
    fig = cv2.imread(str(tmp_path / 'w' / 'vis' / 'test' / files[0]))
    assert fig.shape[1] == 3 * 100 + 2 * 3
    model = runner.model
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_attention_hook_bad_mode_fails_before_data(tmp_path):
    root, ann = make_dataset(tmp_path / 'data', num_images=2, seed=4)
    cfg = runner_cfg(YOLOV5N_CONFIG, root, ann, tmp_path / 'w', custom_hooks=[
        dict(type='mmattnvis.AttentionVisHook')])
    with pytest.raises(ValueError, match=r'^AttentionVisHook.mode: YOLODetector is not a '
                       'DETR-family detector'):
        Runner.from_cfg(cfg).test()
