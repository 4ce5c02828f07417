"""tools/cam_vis.py and tools/eval_faithfulness.py on the shipped shapes YOLOv5-n."""
import csv
import os.path as osp

import cv2
import numpy as np
import pytest

from mmattnvis.cli import (
    cam_vis,  # noqa: E402
    eval_faithfulness,  # noqa: E402
)
from mmattnvis.datasets import generate_shapes_dataset

from conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
WEIGHTS = osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth')


@pytest.fixture(scope='module')
def shapes_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes_dataset(str(root), num_images=2, seed=5)
    return root


def _run(mod, args, capfd):
    rc = mod.main([str(a) for a in args])
    out, err = capfd.readouterr()
    return rc, out, err


def test_cam_vis_figure(shapes_dir, tmp_path, capfd):
    img_path = sorted((shapes_dir / 'images').iterdir())[0]
    img = cv2.imread(str(img_path))
    rc, out, err = _run(cam_vis, [img_path, CONFIG, WEIGHTS, '--method', 'gradcam', 'hirescam',
                                  '--topk', '2', '--score-thr', '0.3', '--device', 'cpu',
                                  '--cell-width', '100', '--out-dir', tmp_path / 'o'], capfd)
    assert rc == 0, err
    fig = cv2.imread(str(tmp_path / 'o' / (img_path.stem + '.png')))
    cell_h = round(img.shape[0] * 100 / img.shape[1])
    # Columns: the image-level one plus one per explained detection (2); rows: the header plus
    # one per method, under a title strip.
    assert fig.shape[1] == 3 * 100 + 2 * 3
    assert fig.shape[0] > 3 * cell_h + 2 * 3
    # The heat maps change the pixels of the method rows relative to the header row.
    rows = fig[-(2 * cell_h + 3):]
    header = fig[-(3 * cell_h + 6):-(2 * cell_h + 6)]
    assert np.abs(rows[:cell_h].astype(int) - header.astype(int)).mean() > 5
    assert 'written to' in out


@pytest.mark.parametrize('args,message', [
    (['--method', 'gradcum'], "unknown CAM method 'gradcum'"),
    (['--target-layers', 'nek'], "unknown layer 'nek'"),
    (['--colormap', 'nope'], 'colormap'),
    (['--target-layers', 'auto', 'neck'], "'auto' stands for the whole layer set"),
    (['--pool-stride', '-1'], 'pool stride must be >= 0'),
])
def test_cam_vis_bad_input(args, message, shapes_dir, tmp_path, capfd):
    img_path = sorted((shapes_dir / 'images').iterdir())[0]
    rc, out, err = _run(cam_vis, [img_path, CONFIG, WEIGHTS, '--device', 'cpu',
                                  '--out-dir', tmp_path / 'o'] + args, capfd)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'o').exists()


def test_eval_faithfulness_table(shapes_dir, tmp_path, capfd):
    rc, out, err = _run(eval_faithfulness, [CONFIG, WEIGHTS, '--data', shapes_dir,
                                            '--methods', 'hirescam', '--steps', '5',
                                            '--topk', '2', '--device', 'cpu',
                                            '--out-dir', tmp_path / 'f'], capfd)
    assert rc == 0, err
    with open(tmp_path / 'f' / 'faithfulness.csv') as f:
        rows = {r['method']: r for r in csv.DictReader(f)}
    assert set(rows) == {'hirescam', 'random'}
    for r in rows.values():
        assert int(r['detections']) >= 2
        for key in ('pointing_game', 'pointing_game_gt', 'energy_pg', 'deletion_auc',
                    'insertion_auc'):
            assert 0.0 <= float(r[key]) <= 1.0
    # HiResCAM's maps sit on the objects; a random map's mass mostly does not.
    assert float(rows['hirescam']['energy_pg']) > float(rows['random']['energy_pg'])
    md = (tmp_path / 'f' / 'faithfulness.md').read_text()
    assert '| hirescam |' in md and '| random |' in md and 'deletion AUC' in md
    with open(tmp_path / 'f' / 'faithfulness_detections.csv') as f:
        per_det = list(csv.DictReader(f))
    assert len(per_det) == 2 * int(rows['random']['detections'])
    assert '| hirescam |' in out


def test_eval_faithfulness_bad_input(tmp_path, capfd):
    rc, _, err = _run(eval_faithfulness, [CONFIG, WEIGHTS, '--data', tmp_path / 'none',
                                          '--device', 'cpu'], capfd)
    assert rc == 2 and err.startswith('error:') and len(err.strip().splitlines()) == 1
    rc, _, err = _run(eval_faithfulness, [CONFIG, WEIGHTS, '--data', tmp_path, '--steps', '1',
                                          '--device', 'cpu'], capfd)
    assert rc == 2 and '--steps' in err
