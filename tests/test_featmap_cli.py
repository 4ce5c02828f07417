"""tools/featmap_vis.py on MMDet and MMYOLO configs, and every bad input."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import pytest

from mmattnvis.cli import featmap_vis  # noqa: E402

from conftest import (
    RETINANET_CONFIG,
    ROOT,
    SHARED_IMAGES,
    YOLOV5N_CONFIG,
    YOLOV5N_WEIGHTS,
    needs_shared,
    square_image,
)

SMALL_RETINA = ['--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(256,256)']
SMALL_YOLO = ['--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(320,320)',
              'test_dataloader.dataset.pipeline.2.scale=(320,320)']


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('imgs')
    cv2.imwrite(str(d / 'a.png'), square_image(120, 200, (20, 30, 60, 70)))
    cv2.imwrite(str(d / 'b.jpg'), square_image(160, 100, (10, 10, 50, 60)))
    return d


def _run(args, capfd):
    rc = featmap_vis.main([str(a) for a in args])
    out, err = capfd.readouterr()
    return rc, out, err


def test_mmdet_config_directory_batch(image_dir, tmp_path, capfd):
    out_dir = tmp_path / 'out'
    rc, out, err = _run([image_dir, RETINANET_CONFIG, 'none', '--target-layers', 'neck',
                         'backbone.layer4', '--channel-reduction', 'squeeze_mean', '--device',
                         'cpu', '--batch-size', '2', '--out-dir', out_dir] + SMALL_RETINA, capfd)
    assert rc == 0, err
    assert '2 image(s) written' in out
    a = cv2.imread(str(out_dir / 'a.png'))
    b = cv2.imread(str(out_dir / 'b.jpg'))
    # 6 panels (5 FPN levels + layer4) in a 3x2 grid of titled 120x200 panels
    assert a.shape[1] == 3 * 200 + 2 * 4 and a.shape[0] > 2 * 120
    assert b.shape[1] == 3 * 100 + 2 * 4
    assert a.std() > 10  # a real picture, not a blank canvas


def test_mmyolo_config_topk_grid(image_dir, tmp_path, capfd):
    out_dir = tmp_path / 'out'
    rc, out, err = _run([image_dir / 'a.png', YOLOV5N_CONFIG, 'none', '--target-layers',
                         'neck.out_layers[2]', '--channel-reduction', 'None', '--topk', '3',
                         '--arrangement', '1', '3', '--device', 'cpu', '--out-dir', out_dir]
                        + SMALL_YOLO, capfd)
    assert rc == 0, err
    img = cv2.imread(str(out_dir / 'a.png'))
    assert img.shape[1] == 3 * 200  # one panel: a 1x3 grid of image-sized cells


def test_preview_model_lists_names_and_shapes(image_dir, capfd):
    rc, out, err = _run([image_dir / 'a.png', YOLOV5N_CONFIG, 'none', '--preview-model',
                         '--device', 'cpu'] + SMALL_YOLO, capfd)
    assert rc == 0, err
    assert 'backbone.stage4 (Sequential): (1, 256, 10, 10)' in out
    assert 'neck (YOLOv5PAFPN): 0=(1, 64, 40, 40), 1=(1, 128, 20, 20), 2=(1, 256, 10, 10)' in out


@needs_shared
def test_real_yolov5_on_photos(tmp_path, capfd):
    out_dir = tmp_path / 'out'
    rc, out, err = _run([SHARED_IMAGES, YOLOV5N_CONFIG, YOLOV5N_WEIGHTS, '--target-layers',
                         'neck', '--device', 'cpu', '--out-dir', out_dir], capfd)
    assert rc == 0, err
    names = sorted(os.listdir(out_dir))
    assert names == sorted(os.listdir(SHARED_IMAGES))
    dog = cv2.imread(str(out_dir / 'dog.jpg'))
    assert dog.shape[1] == 2 * 768 + 4  # 3 levels -> 2x2 grid of 768-wide panels


BAD_INPUTS = [
    (['missing.jpg', RETINANET_CONFIG, 'none'], 'image path not found'),
    (['{empty}', RETINANET_CONFIG, 'none'], 'no images'),
    (['{notimg}', RETINANET_CONFIG, 'none'], 'cannot read image'),
    (['{img}', 'nope/config.py', 'none'], 'config not found'),
    (['{img}', RETINANET_CONFIG, 'nope.pth'], 'checkpoint not found'),
    (['{img}', RETINANET_CONFIG, 'none', '--target-layers', 'neck.fpn_convz'],
     "unknown layer 'neck.fpn_convz'"),
    (['{img}', RETINANET_CONFIG, 'none', '--channel-reduction', 'None', '--topk', '5',
      '--arrangement', '2', '2'], 'fewer than topk=5'),
    (['{img}', RETINANET_CONFIG, 'none', '--colormap', 'rainbowz'], 'unknown colormap'),
]


@pytest.mark.parametrize('args,message', BAD_INPUTS)
def test_bad_inputs_one_line_and_nonzero(args, message, tmp_path, image_dir, capfd):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'notimg.png').write_text('not an image')
    subst = {'{empty}': str(tmp_path / 'empty'), '{notimg}': str(tmp_path / 'notimg.png'),
             '{img}': str(image_dir / 'a.png')}
    args = [subst.get(a, a) for a in args] + ['--device', 'cpu', '--out-dir',
                                               str(tmp_path / 'out')]
    rc, out, err = _run(args, capfd)
    assert rc == 2
    lines = [line for line in err.strip().splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and message in lines[0], err
    assert 'Traceback' not in err
    assert not (tmp_path / 'out').exists()  # nothing half-written


def test_bad_reduction_name_via_subprocess(image_dir, tmp_path):
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'featmap_vis.py'),
                           str(image_dir / 'a.png'), RETINANET_CONFIG, 'none',
                           '--channel-reduction', 'mean'], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count('\n') == 1 and proc.stderr.startswith(
        "error: argument --channel-reduction: invalid choice: 'mean'")
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'featmap_vis.py'),
                           str(image_dir / 'a.png'), RETINANET_CONFIG, 'none', '--device',
                           'cpu', '--target-layers', 'backbone.layer9', '--out-dir',
                           str(tmp_path / 'o')], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown layer "
                                                           "'backbone.layer9'")
    assert 'backbone.layer4' in proc.stderr and 'Traceback' not in proc.stderr
