"""The wheel, installed into a fresh environment with MMDetection but without MMYOLO.

Builds the wheel from a copy of the sources, installs it with ``uv`` (hard links from the uv
cache of ``scripts/setup_env.sh``) next to the project's mmcv wheel, mmengine, mmdet and openmim,
and runs there, with no checkout on the path: ``mmattnvis demo``, ``mim run mmattnvis
featmap_vis`` on an MMDet config (random weights) that inherits an ``mmattnvis::`` config, and the
one-line error of a YOLO config. Skipped when uv or the cached mmcv wheel is not there.
"""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import zipfile

import cv2
import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CACHE = os.environ.get('MMATTNVIS_CACHE') or osp.join(
    os.environ.get('XDG_CACHE_HOME') or osp.expanduser('~/.cache'), 'mmattnvis')
SOURCES = ('setup.py', 'README.md', 'MANIFEST.in', 'model-index.yml', 'mmattnvis', 'configs',
           'tools', 'demo', 'models')
DEMO_IMAGE = osp.join(ROOT, 'demo', 'images', 'shapes_1.jpg')
MODELS = ('yolov5_n_shapes', 'retinanet_r18w32_fpn_shapes', 'dino_slim_shapes')


def _uv() -> str:
    for path in (osp.join(osp.dirname(sys.executable), 'uv'), shutil.which('uv')):
        if path and os.access(path, os.X_OK):
            return path
    pytest.skip('uv is not installed (scripts/setup_env.sh puts it into .venv/bin)')


def _mmcv_wheel() -> str:
    import torch
    tag = f'cp{sys.version_info[0]}{sys.version_info[1]}'
    torch_ver = torch.__version__.split('+')[0]
    found = sorted(glob.glob(osp.join(CACHE, 'wheels', f'mmcv*-torch{torch_ver}-{tag}-*',
                                      'mmcv-*.whl')))
    if not found:
        pytest.skip(f'no cached mmcv wheel for torch {torch_ver} / {tag} under {CACHE}/wheels '
                    '(scripts/setup_env.sh builds it)')
    return found[0]


def _clean_env() -> dict:
    """The environment of the installed tools: no checkout on PYTHONPATH, no pip/uv config."""
    # bytecode is written: the first run compiles what torch/mmdet import, the next ones reuse it
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PIP_FIND_LINKS', 'PIP_INDEX_URL', 'VIRTUAL_ENV',
                        'PYTHONDONTWRITEBYTECODE')}
    env.update(PIP_CONFIG_FILE='/dev/null', UV_NO_CONFIG='1', UV_CACHE_DIR=osp.join(CACHE, 'uv'),
               UV_LINK_MODE='hardlink', MPLBACKEND='Agg', PYTHONWARNINGS='ignore')
    return env


def _run(cmd, cwd, timeout=300):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=_clean_env(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel built (without build isolation) from a copy of the sources."""
    src = tmp_path_factory.mktemp('src')
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim', '*.egg-info')
    for item in SOURCES:
        path = osp.join(ROOT, item)
        if osp.isdir(path):
            shutil.copytree(path, src / item, ignore=ignore)
        else:
            shutil.copy(path, src / item)
    proc = _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
                 '-w', src / 'dist', src], cwd=src)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = glob.glob(str(src / 'dist' / 'mmattnvis-*.whl'))
    return path


@pytest.fixture(scope='module')
def venv(wheel, tmp_path_factory):
    """A fresh venv: the wheel, mmcv (cached build), mmengine, mmdet, openmim; no mmyolo."""
    uv, mmcv = _uv(), _mmcv_wheel()
    import mmdet
    import mmengine
    import torch
    import torchvision
    base = tmp_path_factory.mktemp('venv')
    if os.stat(base).st_dev != os.stat(CACHE).st_dev:  # hard links need one file system
        base = tempfile.mkdtemp(prefix='wheel-test-', dir=CACHE)
    try:
        env_dir = osp.join(base, 'venv')
        proc = _run([uv, 'venv', '-q', '-p', sys.executable, env_dir], cwd=base)
        assert proc.returncode == 0, proc.stderr
        python = osp.join(env_dir, 'bin', 'python')
        reqs = [mmcv, wheel, f'torch=={torch.__version__.split("+")[0]}',
                f'torchvision=={torchvision.__version__.split("+")[0]}',
                f'mmengine=={mmengine.__version__}', f'mmdet=={mmdet.__version__}', 'openmim',
                'numpy<2', 'setuptools<81', 'opencv-python-headless<4.12']
        install = [uv, 'pip', 'install', '-q', '--python', python]
        proc = _run(install + ['--offline'] + reqs, cwd=base)
        if proc.returncode != 0:  # something is not in the uv cache yet: ask the registry
            proc = _run(install + reqs, cwd=base)
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield osp.join(env_dir, 'bin')
    finally:
        if str(base).startswith(CACHE):
            shutil.rmtree(base, ignore_errors=True)


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    mim = 'mmattnvis/.mim/'
    expected = [mim + 'model-index.yml', mim + 'configs/featmap/yolov5_n_neck_featmap.py',
                mim + 'configs/shapes/yolov5_n_shapes.py', mim + 'tools/featmap_vis.py',
                mim + 'tools/attn_vis.py', mim + 'tools/train.py', mim + 'demo/images/shapes_1.jpg',
                'mmattnvis/cli/main.py', 'mmattnvis/cli/featmap_vis.py']
    expected += [f'{mim}models/shapes/{m}/{f}' for m in MODELS for f in ('weights.pth',
                                                                         'README.md')]
    assert not [n for n in expected if n not in names]
    assert not [n for n in names if n.endswith(('train.log', '.pyc')) or n.startswith('tests/')]
    meta = next(n for n in names if n.endswith('.dist-info/METADATA'))
    with zipfile.ZipFile(wheel) as z:
        requires = [line for line in z.read(meta).decode().splitlines()
                    if line.startswith('Requires-Dist:')]
        entry = z.read(meta.replace('METADATA', 'entry_points.txt')).decode()
    assert 'mmattnvis = mmattnvis.cli.main:main' in entry
    mmyolo = [r for r in requires if 'mmyolo' in r]
    assert mmyolo and all('extra == "mmyolo"' in r for r in mmyolo), mmyolo
    assert any(r.startswith('Requires-Dist: mmcv<2.2.0,>=2.0.0') or
               r.replace(' ', '') == 'Requires-Dist:mmcv<2.2.0,>=2.0.0' for r in requires)


def test_demo_without_mmyolo(venv, tmp_path):
    proc = _run([osp.join(venv, 'python'), '-c',
                 'import importlib.util, mmattnvis; assert importlib.util.find_spec("mmyolo") '
                 'is None; print(mmattnvis.__file__)'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(osp.dirname(venv))  # the installed copy, not ours
    proc = _run([osp.join(venv, 'mmattnvis'), 'demo', '--out-dir', tmp_path / 'demo',
                 '--images', DEMO_IMAGE], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'RetinaNet instead of the YOLOv5-n' in proc.stdout
    src = cv2.imread(DEMO_IMAGE)
    featmap = cv2.imread(str(tmp_path / 'demo' / 'featmaps' / 'shapes_1.jpg'))
    attention = cv2.imread(str(tmp_path / 'demo' / 'attention' / 'shapes_1.png'))
    assert featmap is not None and attention is not None
    assert featmap.shape[1] > src.shape[1]  # three FPN-level panels side by side
    assert attention.std() > 10


def test_mim_run_featmap_vis_inherits_mmattnvis_config(venv, tmp_path):
    cfg = tmp_path / 'my_retinanet.py'
    cfg.write_text("_base_ = 'mmattnvis::shapes/retinanet_r18w32_fpn_shapes.py'\n"
                   "model = dict(bbox_head=dict(num_classes=3))\n")
    proc = _run([osp.join(venv, 'mim'), 'run', 'mmattnvis', 'featmap_vis', DEMO_IMAGE, cfg,
                 'none', '--target-layers', 'neck', '--channel-reduction', 'squeeze_mean',
                 '--device', 'cpu', '--out-dir', tmp_path / 'out'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert '.mim/tools/featmap_vis.py' in proc.stdout  # mim found the packaged tool
    out = cv2.imread(str(tmp_path / 'out' / 'shapes_1.jpg'))
    assert out is not None and out.shape[1] > cv2.imread(DEMO_IMAGE).shape[1]


def test_yolo_config_without_mmyolo_is_one_line(venv, tmp_path):
    # CONFIG CHECKPOINT IMG order, as the design card writes it; an mmattnvis:: config whose base
    # is an mmyolo:: config (the mmyolo:: path itself: test_cli_args.py)
    config = 'mmattnvis::shapes/yolov5_n_shapes.py'
    proc = _run([osp.join(venv, 'mmattnvis'), 'featmap', config, 'none', DEMO_IMAGE,
                 '--device', 'cpu', '--out-dir', tmp_path / 'out'], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
    assert "pip install 'mmattnvis[mmyolo]'" in lines[0] and config in lines[0]
    assert not (tmp_path / 'out').exists()
