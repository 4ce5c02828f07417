"""Inputs in either order, the ``mmattnvis`` command, ``mmattnvis::`` configs and models, and the
MMYOLO extra's error (the installed-wheel side is in ``test_wheel.py``)."""
import argparse
import os.path as osp
import subprocess
import sys

import cv2
import pytest

from mmattnvis.cli import featmap_vis
from mmattnvis.cli.main import COMMANDS
from mmattnvis.cli.main import main as mmattnvis_main
from mmattnvis.utils.cli import order_inputs
from mmattnvis.utils.errors import UserInputError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
IMAGE = osp.join(ROOT, 'demo', 'images', 'shapes_1.jpg')
RETINA_CFG = 'mmattnvis::shapes/retinanet_r18w32_fpn_shapes.py'
RETINA_PTH = 'mmattnvis::shapes/retinanet_r18w32_fpn_shapes.pth'


def _ns(a, b, c):
    return argparse.Namespace(img=a, config=b, checkpoint=c)


@pytest.mark.parametrize('given', [
    (IMAGE, 'cfg.py', 'w.pth'),            # IMG CONFIG CHECKPOINT (MMYOLO's demos)
    ('cfg.py', 'w.pth', IMAGE),            # CONFIG CHECKPOINT IMG (the design card)
    ('photo', 'cfg.py', 'none'),           # an image without extension is placed by the others
    ('cfg.py', 'epoch_12', IMAGE),         # so is a checkpoint without one
    ('my_config', 'epoch_12', IMAGE),      # an image last: CONFIG CHECKPOINT IMG
    (ROOT + '/demo/images', 'cfg.py', 'mmattnvis::shapes/x.pth'),
])
def test_both_orders(given):
    args = order_inputs(_ns(*given))
    img = next(g for g in given if g in (IMAGE, 'photo', ROOT + '/demo/images'))
    assert args.img == img and args.config in ('cfg.py', 'my_config')
    assert args.checkpoint in ('w.pth', 'none', 'epoch_12', 'mmattnvis::shapes/x.pth')


@pytest.mark.parametrize('given,why', [
    (('a', 'b', 'c'), 'cannot tell which is which'),
    (('b', 'x.jpg', 'c'), 'not in an accepted order'),  # an image in the middle fits neither
    (('w.pth', IMAGE, 'cfg.py'), 'not in an accepted order'),
    (('cfg.py', 'other.py', IMAGE), 'not in an accepted order'),
])
def test_ambiguous_or_wrong_order_is_an_error(given, why):
    with pytest.raises(UserInputError, match=why):
        order_inputs(_ns(*given))


def test_cli_ambiguous_call_one_line(tmp_path, capfd):
    rc = featmap_vis.main(['a', 'b', 'c', '--out-dir', str(tmp_path / 'o')])
    err = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith('error: inputs a (unclear)')
    assert not (tmp_path / 'o').exists()


def test_config_checkpoint_img_order_runs(tmp_path, capfd):
    """The shipped RetinaNet in CONFIG CHECKPOINT IMG order, by its mmattnvis:: names."""
    rc = featmap_vis.main([RETINA_CFG, RETINA_PTH, IMAGE, '--target-layers', 'neck',
                           '--channel-reduction', 'squeeze_mean', '--device', 'cpu',
                           '--out-dir', str(tmp_path)])
    assert rc == 0, capfd.readouterr().err
    out = cv2.imread(str(tmp_path / 'shapes_1.jpg'))
    assert out is not None and out.shape[1] > cv2.imread(IMAGE).shape[1]


def test_help_states_both_orders(capsys):
    with pytest.raises(SystemExit) as exc:
        mmattnvis_main(['featmap', '--help'])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert out.startswith('usage: mmattnvis featmap')
    flat = ' '.join(out.split())
    assert 'IMG CONFIG CHECKPOINT' in flat and 'CONFIG CHECKPOINT IMG' in flat


def test_mmattnvis_command_lists_and_dispatches(capsys):
    assert mmattnvis_main(['--help']) == 0
    out = capsys.readouterr().out
    assert all(f'  {name} ' in out for name in COMMANDS)
    assert mmattnvis_main(['featmp']) == 2
    assert "did you mean 'featmap'" in capsys.readouterr().err


def test_tools_wrapper(tmp_path):
    """``tools/featmap_vis.py`` of the checkout runs the package's tool."""
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'featmap_vis.py'), '--help'],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and 'CONFIG CHECKPOINT IMG' in ' '.join(proc.stdout.split())


# ----- mmattnvis:: configs and shipped models -----------------------------------------------------
def test_mmattnvis_config_in_base_and_fromfile(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile('mmattnvis::featmap/yolov5_n_neck_featmap.py')
    assert cfg.custom_hooks[0]['type'] == 'mmattnvis.FeatMapVisHook'
    user = tmp_path / 'user.py'
    user.write_text("_base_ = 'mmattnvis::shapes/retinanet_r18w32_fpn_shapes.py'\n"
                    "model = dict(bbox_head=dict(num_classes=3))\n")
    cfg = Config.fromfile(str(user))
    assert cfg.model.type == 'RetinaNet' and cfg.model.bbox_head.num_classes == 3
    # our configs are MMDet/MMYOLO configs: their types keep their own scope, not 'mmattnvis'
    assert cfg.model.get('_scope_') == 'mmdet'
    assert cfg.test_dataloader.dataset.metainfo['classes'][0] == 'circle'


def test_unknown_shipped_config_or_model():
    from mmattnvis.apis.model import checkpoint_arg, load_config
    with pytest.raises(UserInputError, match='did you mean mmattnvis::shapes/yolov5_n_shapes.py'):
        load_config('mmattnvis::shapes/yolov5_n_shape.py')
    with pytest.raises(UserInputError, match='shipped: .*dino_slim_shapes.pth'):
        checkpoint_arg('mmattnvis::shapes/yolo.pth')


def test_shipped_model_by_name():
    from mmattnvis.apis import shipped_model
    from mmattnvis.apis.model import checkpoint_arg
    cfg, weights = shipped_model('yolov5_n_shapes')
    assert cfg.endswith(osp.join('shapes', 'yolov5_n_shapes.py')) and osp.isfile(cfg)
    assert weights == checkpoint_arg('mmattnvis::shapes/yolov5_n_shapes.pth')
    assert osp.getsize(weights) > 1e6
    cfg, _ = shipped_model('mmattnvis::shapes/dino_slim_shapes.pth')
    assert cfg.endswith('dino_slim_shapes.py')
    with pytest.raises(UserInputError, match='shipped: shapes/dino_slim_shapes'):
        shipped_model('yolov8')


def test_compat_patch_matches_mmengine():
    """The MMEngine internals the compat patch wraps are still there, in the versions it was
    written for; other packages' ``pkg::`` configs resolve as before."""
    import mmengine
    from mmengine.config import Config
    from mmengine.config.utils import MODULE2PACKAGE
    from mmengine.utils import digit_version

    from mmattnvis.compat.mmengine_config import MMENGINE_VERSIONS
    low, high = map(digit_version, MMENGINE_VERSIONS)
    assert low <= digit_version(mmengine.__version__) < high, (
        f'mmengine {mmengine.__version__}: re-check mmattnvis/compat/mmengine_config.py')
    assert MODULE2PACKAGE['mmattnvis'] == 'mmattnvis'
    path, scope = Config._get_cfg_path('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', 'x.py')
    assert scope == 'mmdet' and osp.isfile(path)
    path, scope = Config._get_cfg_path('mmattnvis::shapes/yolov5_n_shapes.py', 'x.py')
    assert scope is None and path.endswith(osp.join('configs', 'shapes', 'yolov5_n_shapes.py'))


@pytest.mark.parametrize('config', ['mmattnvis::shapes/yolov5_n_shapes.py',
                                    'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'])
def test_yolo_config_without_mmyolo_names_the_extra(config, monkeypatch):
    from mmattnvis.apis import model
    monkeypatch.setattr(model, 'has_mmyolo', lambda: False)
    with pytest.raises(UserInputError, match=r"needs MMYOLO.*pip install 'mmattnvis\[mmyolo\]'"):
        model.load_config(config)
