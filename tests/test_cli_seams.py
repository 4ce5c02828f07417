"""Small seams a user meets between the tools (issues 24 item 10 and 28), each through the CLI as
it is typed: the device fallback notice, ``--max-size`` as a hard bound, errors on their own line
after a progress bar, no third-party noise on stderr, shipped model names in ``load_from``, the
README's shapes-generator commands, ``--help`` texts and the ``tools/`` wrappers."""
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT

YOLO_CFG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
YOLO = 'mmattnvis::shapes/yolov5_n_shapes.pth'
DINO_CFG = osp.join(ROOT, 'configs', 'shapes', 'dino_slim_shapes.py')
DINO = 'mmattnvis::shapes/dino_slim_shapes.pth'


def _run(args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable] + args, cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _merged(args):
    """stdout and stderr in one stream, as a terminal shows them."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    from mmattnvis.datasets import make_shapes_image
    d = tmp_path_factory.mktemp('imgs')
    for i, hw in enumerate([(150, 160), (300, 400)]):
        cv2.imwrite(str(d / f'img{i}.png'), make_shapes_image(np.random.default_rng(i), hw)[0])
    return d


def test_explicit_cuda_without_cuda_warns_once(images, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: nothing falls back')
    out = tmp_path / 'out'
    proc = _run(['tools/featmap_vis.py', str(images / 'img0.png'), YOLO_CFG, YOLO, '--device',
                 'cuda:0', '--target-layers', 'neck', '--out-dir', str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [
        'warning: --device cuda:0: CUDA is not available on this machine; running on the CPU']
    assert (out / 'img0.png').is_file()
    # the default (--device auto) says nothing: test_head_ablation_and_featmap_print_no_...


def test_max_size_bounds_the_written_figure(images, tmp_path):
    """Titles and borders used to add pixels beyond --max-size (2009 px for 2000)."""
    out = tmp_path / 'out'
    proc = _run(['tools/featmap_vis.py', str(images / 'img1.png'), YOLO_CFG, YOLO, '--device',
                 'cpu', '--target-layers', 'neck', 'backbone', '--channel-reduction', 'None',
                 '--topk', '4', '--max-size', '300', '--out-dir', str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    h, w = cv2.imread(str(out / 'img1.png')).shape[:2]
    assert max(h, w) == 300, (h, w)  # scaled to the bound, not past it


def test_error_after_progress_bar_starts_its_own_line(images, tmp_path):
    proc = _merged(['tools/attn_vis.py', str(images), DINO_CFG, DINO, '--device', 'cpu',
                    '--mode', 'encoder', '--direction', 'from', '--points', '900,900',
                    '--out-dir', str(tmp_path / 'out')])
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert 'ETA:error' not in proc.stdout
    errors = [x for x in proc.stdout.splitlines() if x.startswith('error:')]
    assert len(errors) == 1 and 'point 900,900 is outside the image' in errors[0]


def test_no_library_noise_before_the_error_line(tmp_path):
    """tools/test.py printed pkg_resources' deprecation lines before its error."""
    cfg = tmp_path / 'bad.py'
    cfg.write_text(f'_base_ = {YOLO_CFG!r}\nmodel = 5\n')
    proc = _run(['tools/test.py', str(cfg), YOLO, '--work-dir', str(tmp_path / 'w')])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f'error: config {cfg}: model must be a dict with a type, e.g. model = '
        "dict(type='RetinaNet', ...); got 5"]


def test_head_ablation_and_featmap_print_no_library_warnings(images, tmp_path):
    """No torch meshgrid warning, no MMEngine "Failed to search registry ... method" line."""
    proc = _merged(['tools/head_ablation.py', str(images / 'img0.png'), DINO_CFG, DINO,
                    '--device', 'cpu', '--part', 'decoder_self', '--cell-width', '64',
                    '--out-dir', str(tmp_path / 'abl')])
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert 'meshgrid' not in proc.stdout and 'Warning' not in proc.stdout
    # the default device (auto) on a machine without CUDA: no warning either
    proc = _merged(['tools/featmap_vis.py', str(images / 'img0.png'), YOLO_CFG, YOLO,
                    '--channel-reduction', 'None', '--out-dir', str(tmp_path / 'fm')])
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert 'Failed to search registry' not in proc.stdout
    assert 'pkg_resources' not in proc.stdout
    assert not [line for line in proc.stdout.splitlines() if line.startswith('warning:')]


def test_load_from_takes_a_shipped_model_name(tmp_path):
    """``load_from='mmattnvis::shapes/...pth'`` in a training config (said "checkpoint not
    found"): one epoch on 2 shapes images at 64 px starts from the shipped weights."""
    from mmattnvis.apis.model import load_config
    from mmattnvis.datasets import generate_shapes_dataset
    generate_shapes_dataset(str(tmp_path / 'data'), num_images=2, seed=3)
    cfg = load_config(osp.join(ROOT, 'configs', 'shapes', 'retinanet_r18w32_fpn_shapes.py'))
    dl = cfg.train_dataloader
    dl.batch_size, dl.num_workers, dl.persistent_workers = 2, 0, False
    dl.dataset.update(data_root=str(tmp_path / 'data'), ann_file='annotations.json',
                      data_prefix=dict(img='images/'))
    for t in dl.dataset.pipeline:
        if 'scale' in t:
            t['scale'] = (64, 64)
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg', 'test_dataloader',
                'test_evaluator', 'test_cfg'):
        cfg.pop(key, None)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.load_from = 'mmattnvis::shapes/retinanet_r18w32_fpn_shapes.pth'
    path = tmp_path / 'cfg.py'
    cfg.dump(str(path))
    proc = _merged(['tools/train.py', str(path), '--work-dir', str(tmp_path / 'work')])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert ('Loads checkpoint by local_safely backend from path: '
            'mmattnvis::shapes/retinanet_r18w32_fpn_shapes.pth') in proc.stdout
    assert 'checkpoint not found' not in proc.stdout
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()


def test_readme_shapes_commands_make_the_layout_the_configs_read(tmp_path):
    """The README's generator commands (run with 2 images each) give data/shapes/{train,val,
    test} exactly where the shapes configs look."""
    readme = open(osp.join(ROOT, 'README.md'), encoding='utf-8').read()
    commands = re.findall(r'^python (tools/make_shapes\.py .+)$', readme, flags=re.M)
    splits = {re.search(r'--out-dir data/shapes/(\w+)', c).group(1) for c in commands}
    assert splits == {'train', 'val', 'test'}, commands
    for command in commands:
        args = re.sub(r'--num-images \d+', '--num-images 2', command).split()
        args[0] = osp.join(ROOT, args[0])
        proc = _run(args, cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stderr[-2000:]
    from mmattnvis.apis.model import load_config
    for name in ('yolov5_n_shapes', 'retinanet_r18w32_fpn_shapes', 'dino_slim_shapes'):
        cfg = load_config(osp.join(ROOT, 'configs', 'shapes', f'{name}.py'))
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            ds = cfg[loader].dataset
            while 'ann_file' not in ds:
                ds = ds.dataset
            root = tmp_path / ds.data_root
            assert (root / ds.ann_file).is_file(), (name, loader)
            assert len(os.listdir(root / ds.data_prefix['img'])) == 2, (name, loader)


def test_faithfulness_help_names_the_shipped_models():
    proc = _run(['tools/eval_faithfulness.py', '--help'])
    assert proc.returncode == 0
    assert 'mmattnvis::shapes/<name>.pth' in proc.stdout
    assert 'dino_slim_shapes' in proc.stdout


def test_tools_wrappers_do_not_edit_sys_path():
    for name in sorted(os.listdir(osp.join(ROOT, 'tools'))):
        if name.endswith('.py'):
            text = open(osp.join(ROOT, 'tools', name), encoding='utf-8').read()
            assert 'sys.path' not in text, name
    proc = _run(['tools/report.py', '--help'])
    assert proc.returncode == 0 and 'RESULTS_DIR' in proc.stdout
