"""Every bad input of every CLI is one ``error:`` line, exit code 2, no traceback and nothing
written (issue 20); a dataset run skips unreadable images and names them at the end.

The tools run in-process through their ``main(argv)``. Options are validated before any model
is built, so most cases here take milliseconds; the ones that need a model use the shipped
shapes models (YOLOv5-n, slim DINO) at a small test scale.
"""
import importlib.util
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from conftest import ROOT

YOLO_CFG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
YOLO_W = osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth')
DINO_CFG = osp.join(ROOT, 'configs', 'shapes', 'dino_slim_shapes.py')
DINO_W = osp.join(ROOT, 'models', 'shapes', 'dino_slim_shapes', 'weights.pth')
YOLO_SMALL = ['test_dataloader.dataset.pipeline.1.scale=(160,160)',
              'test_dataloader.dataset.pipeline.2.scale=(160,160)']
DINO_SMALL = ['test_dataloader.dataset.pipeline.1.scale=(128,128)']


def _tool(name):
    """A tool module by file name (``test.py`` would clash with pytest's own names)."""
    spec = importlib.util.spec_from_file_location(f'mmattnvis_tool_{name}',
                                                  osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOLS = {name: _tool(name) for name in ('featmap_vis', 'attn_vis', 'cam_vis', 'head_ablation',
                                        'eval_faithfulness', 'test', 'val', 'train')}
RUNNER_TOOLS = ('test', 'val', 'train')
IMAGE_TOOLS = ('featmap_vis', 'attn_vis', 'cam_vis', 'head_ablation')
MODEL_OF = {'featmap_vis': 'yolo', 'attn_vis': 'dino', 'cam_vis': 'yolo',
            'head_ablation': 'dino', 'eval_faithfulness': 'yolo'}
#: how many distinct bad inputs this file feeds (counted as the cases are declared)
BAD_INPUT_CASES = []


def _argv(tool, data, out_dir, extra=(), model=None, checkpoint=None):
    """The command line of ``tool`` on ``data`` (image, directory or config for test.py)."""
    model = model or MODEL_OF.get(tool, 'yolo')
    cfg, weights, small = ((YOLO_CFG, YOLO_W, YOLO_SMALL) if model == 'yolo' else
                           (DINO_CFG, DINO_W, DINO_SMALL))
    weights = checkpoint if checkpoint is not None else weights
    extra = list(extra)
    cfg_opts = []
    if '--cfg-options' in extra:
        i = extra.index('--cfg-options')
        cfg_opts, extra = extra[i + 1:], extra[:i]
    if tool in IMAGE_TOOLS:
        argv = [data, cfg, weights, '--out-dir', out_dir, '--device', 'cpu']
        if tool == 'attn_vis':
            argv += ['--mode', 'deformable']
    elif tool == 'eval_faithfulness':
        argv = [cfg, weights, '--data', data, '--out-dir', out_dir, '--device', 'cpu',
                '--steps', '3', '--no-insertion', '--methods', 'gradcam']
    elif tool in ('test', 'val'):
        # the work dir holds MMEngine's logs, also of a failed run; --out-dir the drawings
        argv = [data, weights, '--out-dir', out_dir, '--work-dir', str(out_dir) + '_work']
        small = []
    else:  # train
        argv = [data, '--work-dir', out_dir]
        small = []
    return [str(a) for a in argv + extra + ['--cfg-options'] + small + cfg_opts] \
        if small or cfg_opts else [str(a) for a in argv + extra]


def run_tool(tool, argv, capfd):
    try:
        rc = TOOLS[tool].main(argv)
    except SystemExit as stop:  # argparse's own errors exit (still one line, code 2)
        rc = stop.code
    out, err = capfd.readouterr()
    return rc, out, err


def assert_one_error(rc, err, message, out_dir=None):
    assert rc == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(lines) == 1, err[-2000:]
    assert message in lines[0], lines[0]
    assert 'Traceback' not in err
    if out_dir is not None and osp.isdir(out_dir):
        assert os.listdir(out_dir) == [], os.listdir(out_dir)


def write_good(path, seed=0):
    from mmattnvis.datasets import make_shapes_image
    cv2.imwrite(str(path), make_shapes_image(np.random.default_rng(seed), (160, 200))[0])
    return path


def corrupt_jpeg_bytes():
    """A JPEG with a valid header whose entropy-coded data is garbage."""
    img = np.full((64, 64, 3), 128, np.uint8)
    cv2.circle(img, (32, 32), 20, (0, 0, 255), -1)
    data = bytearray(cv2.imencode('.jpg', img)[1].tobytes())
    for i in range(300, len(data) - 2):
        data[i] = (data[i] * 7 + 13) & 0xFF
    return bytes(data)


def sos_jpeg_bytes():
    """A JPEG with valid headers whose scan header is wrong for a sequential JPEG: OpenCV decodes
    it into a picture without error; only libjpeg's warning "Invalid SOS parameters for
    sequential JPEG" on stderr tells (issue 28)."""
    img = np.full((64, 64, 3), 128, np.uint8)
    cv2.circle(img, (32, 32), 20, (0, 0, 255), -1)
    data = bytearray(cv2.imencode('.jpg', img)[1].tobytes())
    sos = data.index(b'\xff\xda')
    data[sos + 5 + 2 * data[sos + 4] + 1] = 40  # Se: 63 -> 40
    return bytes(data)


def truncated_png_bytes():
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = cv2.imencode('.png', img)[1].tobytes()
    return data[:len(data) // 2]


BAD_IMAGES = {
    'text.jpg': b'this is a text file, not an image\n',
    'empty.png': b'',
    'corrupt.jpg': None,  # filled in below (needs cv2)
    'truncated.png': None,
}
BAD_IMAGES['corrupt.jpg'] = corrupt_jpeg_bytes()
BAD_IMAGES['truncated.png'] = truncated_png_bytes()
BAD_IMAGES['sos.jpg'] = sos_jpeg_bytes()


@pytest.fixture(scope='module')
def good_image(tmp_path_factory):
    return write_good(tmp_path_factory.mktemp('good') / 'good.jpg')


@pytest.fixture(scope='module')
def config_file(tmp_path_factory):
    """A tools/test.py config: the shapes YOLOv5-n with a FeatMapVisHook on 6 shapes images."""
    from runner_utils import make_dataset, runner_cfg
    root = tmp_path_factory.mktemp('testset')
    _, ann = make_dataset(root, num_images=6, seed=21)
    cfg = runner_cfg(YOLO_CFG, str(root), ann, root / 'work', custom_hooks=[dict(
        type='mmattnvis.FeatMapVisHook', target_layers=['neck'], interval=1,
        channel_reduction='squeeze_mean', out_dir='vis')], scale=128, batch_size=2)
    path = root / 'cfg.py'
    cfg.dump(str(path))
    return str(path), root, ann


def _out(tmp_path):
    return str(tmp_path / 'out')


# ------------------------------------------------------------------ flags and option values
ALL_TOOLS = tuple(TOOLS)
FLAG_CASES = [
    # (tools, extra argv, message)
    (('featmap_vis', 'attn_vis', 'cam_vis', 'head_ablation', 'eval_faithfulness'),
     ['--score-thr', '2'], '--score-thr must be within [0, 1], got 2.0'),
    (('featmap_vis', 'attn_vis', 'cam_vis', 'head_ablation', 'eval_faithfulness'),
     ['--score-thr', 'nan'], '--score-thr must be a finite number'),
    (('featmap_vis', 'attn_vis', 'cam_vis'), ['--alpha', '5'], '--alpha must be within [0, 1]'),
    (('head_ablation',), ['--iou-thr', '5'], '--iou-thr must be within [0, 1]'),
    (('eval_faithfulness',), ['--tolerance', '-5'], '--tolerance must be >= 0'),
    (('eval_faithfulness',), ['--max-images', '-1'], '--max-images must be >= 0'),
    (('featmap_vis',), ['--preview-depth', '-1'], '--preview-depth must be >= 0'),
    (('attn_vis', 'cam_vis', 'head_ablation'), ['--cell-width', '0'],
     '--cell-width must be >= 32'),
    (('featmap_vis', 'cam_vis', 'eval_faithfulness'), ['--batch-size', '0'],
     '--batch-size must be >= 1'),
    (('attn_vis',), ['--max-queries', '0'], '--max-queries must be >= 1'),
    (('eval_faithfulness',), ['--steps', '1'], '--steps must be >= 2'),
    # issue 28: refused whatever the reduction (they were ignored by squeeze_mean)
    (('featmap_vis',), ['--topk', '-3', '--channel-reduction', 'squeeze_mean'],
     '--topk must be an integer >= 0'),
    (('featmap_vis',), ['--topk', '-3'], '--topk must be an integer >= 0'),
    (('featmap_vis',), ['--arrangement', '0', '0', '--channel-reduction', 'squeeze_mean'],
     'arrangement must be two positive numbers ROWS COLS, got [0, 0]'),
    (('featmap_vis',), ['--arrangement', '0', '0', '--channel-reduction', 'None'],
     'arrangement must be two positive numbers ROWS COLS, got [0, 0]'),
    (('featmap_vis', 'attn_vis', 'cam_vis', 'head_ablation', 'eval_faithfulness'),
     ['--device', 'foo'], "--device 'foo' is not a device"),
    (('featmap_vis', 'attn_vis', 'cam_vis', 'head_ablation', 'eval_faithfulness'),
     ['--device', 'cpu:x'], 'is not a device'),
    (ALL_TOOLS, ['--cfg-options', 'a'], "argument --cfg-options: expected key=value, got 'a'"),
    (ALL_TOOLS, ['--cfg-options', '=3'], "expected key=value, got '=3'"),
    (ALL_TOOLS, ['--cfg-options', 'a=[1,(2]'], 'cannot parse'),
    (RUNNER_TOOLS, ['--cfg-options', "custom_hooks=[dict(type='X',interval=0)]"],
     'cannot parse'),
]
FLAG_PARAMS = [(tool, extra, message) for tools, extra, message in FLAG_CASES
               for tool in tools]
BAD_INPUT_CASES += [f'{t} {" ".join(e)}' for t, e, _ in FLAG_PARAMS]


@pytest.mark.parametrize('tool,extra,message', FLAG_PARAMS,
                         ids=[f'{t}{"".join(e)}' for t, e, _ in FLAG_PARAMS])
def test_bad_flag_values(tool, extra, message, good_image, tmp_path, capfd):
    data = YOLO_CFG if tool in RUNNER_TOOLS else good_image
    rc, out, err = run_tool(tool, _argv(tool, data, _out(tmp_path), extra), capfd)
    assert_one_error(rc, err, message, _out(tmp_path))
    assert not osp.exists(_out(tmp_path))


def test_device_index_and_type_checked():
    import torch

    from mmattnvis.utils.errors import UserInputError
    from mmattnvis.utils.validate import check_device
    assert check_device('cpu') == 'cpu'
    if not torch.cuda.is_available():
        assert check_device('cuda:0') == 'cpu'  # the documented fallback of the default
    else:
        with pytest.raises(UserInputError, match='CUDA device'):
            check_device(f'cuda:{torch.cuda.device_count()}')
    with pytest.raises(UserInputError, match='meta device'):
        check_device('meta')


# ------------------------------------------------------------------------- output directory
OUT_DIR_CASES = ['existing file', 'under a file', 'not writable']
BAD_INPUT_CASES += [f'{t} --out-dir {c}' for t in ALL_TOOLS for c in OUT_DIR_CASES]
BAD_INPUT_CASES += [f'{t} --work-dir {c}' for t in ('test', 'val') for c in OUT_DIR_CASES]


def _bad_out_dir(case, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('keep me')
    if case == 'existing file':
        return str(blocker), 'is an existing file, not a directory'
    if case == 'under a file':
        return str(blocker / 'sub' / 'out'), 'lies under'
    # /proc does not take new files, also not from root (chmod would not stop root)
    return '/proc/mmattnvis-out', 'is not writable'


@pytest.mark.parametrize('case', OUT_DIR_CASES)
@pytest.mark.parametrize('tool', ALL_TOOLS)
def test_unusable_out_dir(tool, case, good_image, tmp_path, capfd):
    out_dir, message = _bad_out_dir(case, tmp_path)
    data = YOLO_CFG if tool in RUNNER_TOOLS else good_image
    argv = _argv(tool, data, out_dir)
    if tool in ('test', 'val'):  # --out-dir (the hooks' folder); --work-dir elsewhere, fine
        argv[argv.index('--work-dir') + 1] = str(tmp_path / 'work')
    rc, out, err = run_tool(tool, argv, capfd)
    flag = '--work-dir' if tool == 'train' else '--out-dir'
    assert_one_error(rc, err, f'{flag} ', None)
    assert message in err
    assert (tmp_path / 'a_file').read_text() == 'keep me'
    assert sorted(os.listdir(tmp_path)) == ['a_file']  # nothing created, not even work dirs


@pytest.mark.parametrize('tool', ['test', 'val'])
@pytest.mark.parametrize('case', OUT_DIR_CASES)
def test_unusable_work_dir_of_test_py(case, tool, tmp_path, capfd):
    work_dir, message = _bad_out_dir(case, tmp_path)
    argv = ['--work-dir', work_dir, YOLO_CFG, YOLO_W]
    rc, out, err = run_tool(tool, argv, capfd)
    assert_one_error(rc, err, '--work-dir ', None)
    assert message in err


# ------------------------------------------------------------------------------ checkpoints
CKPT_CASES = {
    'text file': (lambda p: p.write_text('not a checkpoint\n'), 'is not a PyTorch checkpoint'),
    'random bytes': (lambda p: p.write_bytes(np.random.default_rng(1).integers(
        0, 256, 4096, dtype=np.uint8).tobytes()), 'is not a PyTorch checkpoint'),
    'directory': (lambda p: p.mkdir(), 'checkpoint is a directory, not a file'),
}
CKPT_TOOLS = ('featmap_vis', 'attn_vis', 'cam_vis', 'head_ablation', 'eval_faithfulness', 'test',
              'val')
BAD_INPUT_CASES += [f'{t} checkpoint {c}' for t in CKPT_TOOLS for c in CKPT_CASES]


@pytest.mark.parametrize('case', list(CKPT_CASES))
@pytest.mark.parametrize('tool', CKPT_TOOLS)
def test_bad_checkpoints(tool, case, good_image, config_file, tmp_path, capfd):
    make, message = CKPT_CASES[case]
    ckpt = tmp_path / 'ckpt.pth'
    make(ckpt)
    data = config_file[0] if tool in ('test', 'val') else (
        good_image.parent if tool == 'eval_faithfulness' else good_image)
    rc, out, err = run_tool(tool, _argv(tool, data, _out(tmp_path), checkpoint=ckpt), capfd)
    assert_one_error(rc, err, message, _out(tmp_path))
    assert '--unsafe-load' not in err


# ----------------------------------------------------------- a config value of the wrong type
CFG_TYPE_TOOLS = ('featmap_vis', 'attn_vis', 'cam_vis', 'head_ablation', 'eval_faithfulness',
                  'test')
BAD_INPUT_CASES += [f'{t} config value of the wrong type' for t in CFG_TYPE_TOOLS]


@pytest.mark.parametrize('tool', CFG_TYPE_TOOLS)
def test_config_value_of_wrong_type(tool, good_image, config_file, tmp_path, capfd):
    data = config_file[0] if tool == 'test' else (
        good_image.parent if tool == 'eval_faithfulness' else good_image)
    # the resize scale given as text: mmcv fails deep inside the pipeline
    bad = ['--cfg-options', "test_dataloader.dataset.pipeline.1.scale=('a','b')"]
    rc, out, err = run_tool(tool, _argv(tool, data, _out(tmp_path), bad), capfd)
    cfg_name = osp.basename(config_file[0] if tool == 'test' else (
        DINO_CFG if MODEL_OF[tool] == 'dino' else YOLO_CFG))
    assert_one_error(rc, err, 'pipeline of ', _out(tmp_path))
    line = [x for x in err.splitlines() if x.startswith('error:')][0]
    assert cfg_name in line and 'TypeError' in line


# ------------------------------------- bad config types and values in test / val / train
#: (config lines appended to a config that inherits the shapes YOLOv5-n, message); issue 28's
#: three tracebacks of tools/test.py and issue 24's hook typos are among them
RUNNER_CFG_CASES = {
    'model = 5': ('model = 5', 'model must be a dict with a type'),
    'unknown model type': ("model = dict(type='NoSuchDetector')",
                           "model type 'NoSuchDetector' is not registered in the mmyolo scope"),
    'model without type': ('model = dict(_delete_=True, backbone=None)',
                           'model must be a dict with a type'),
    'custom_hooks not a list': ('custom_hooks = 5', 'custom_hooks must be a list'),
    'custom hook not a dict': ("custom_hooks = ['FeatMapVisHook']",
                               'custom_hooks[0] must be dict(type=..., ...)'),
    'hook argument typo': ("custom_hooks = [dict(type='mmattnvis.FeatMapVisHook', "
                           "target_layer=['neck'])]",
                           'FeatMapVisHook.target_layer: unknown argument; did you mean '
                           'target_layers?'),
    'misspelt hook type': ("custom_hooks = [dict(type='mmattnvis.FeatMapVisHok', "
                           "target_layers=['neck'])]",
                           "'mmattnvis.FeatMapVisHok' is not registered in the mmyolo scope; "
                           'did you mean mmattnvis.FeatMapVisHook'),
}
#: (--cfg-options item on the tool's own dataloader, message)
LOADER_CASES = {
    'batch_size=0': ('batch_size=0', 'batch_size must be a positive integer, got 0'),
    'batch_size=-2': ('batch_size=-2', 'batch_size must be a positive integer, got -2'),
    "batch_size='a'": ("batch_size='a'", "batch_size must be a positive integer, got 'a'"),
    'num_workers=-1': ('num_workers=-1', 'num_workers must be an integer >= 0, got -1'),
    'dataset=5': ('dataset=5', 'dataset must be a dict(type=..., ...), got 5'),
}
LOADER_OF = {'test': 'test_dataloader', 'val': 'val_dataloader', 'train': 'train_dataloader'}
BAD_INPUT_CASES += [f'{t} config {c}' for t in RUNNER_TOOLS for c in RUNNER_CFG_CASES]
BAD_INPUT_CASES += [f'{t} --cfg-options {LOADER_OF[t]}.{c}' for t in RUNNER_TOOLS
                    for c in LOADER_CASES]


def _runner_argv(tool, cfg, tmp_path, extra=()):
    if tool == 'train':
        return [str(cfg), '--work-dir', str(tmp_path / 'work')] + list(extra)
    return [str(cfg), YOLO_W, '--work-dir', str(tmp_path / 'work'), '--out-dir', 'vis'] + list(
        extra)


@pytest.mark.parametrize('case', list(RUNNER_CFG_CASES))
@pytest.mark.parametrize('tool', RUNNER_TOOLS)
def test_bad_runner_config(tool, case, tmp_path, capfd):
    lines, message = RUNNER_CFG_CASES[case]
    cfg = tmp_path / 'my_cfg.py'
    cfg.write_text(f'_base_ = {YOLO_CFG!r}\n{lines}\n')
    rc, out, err = run_tool(tool, _runner_argv(tool, cfg, tmp_path), capfd)
    assert_one_error(rc, err, message)
    assert not [x for x in err.splitlines() if x.strip() and not x.startswith('error:')], err
    assert not osp.exists(tmp_path / 'work' / 'vis')


@pytest.mark.parametrize('case', list(LOADER_CASES))
@pytest.mark.parametrize('tool', RUNNER_TOOLS)
def test_bad_dataloader_value(tool, case, tmp_path, capfd):
    item, message = LOADER_CASES[case]
    argv = _runner_argv(tool, YOLO_CFG, tmp_path, ['--cfg-options', f'{LOADER_OF[tool]}.{item}'])
    rc, out, err = run_tool(tool, argv, capfd)
    assert_one_error(rc, err, f'{LOADER_OF[tool]}.{message}')
    assert not [x for x in err.splitlines() if x.strip() and not x.startswith('error:')], err


# ------------------------------------------------- hook configuration errors in test / train
def test_hook_config_error_is_one_line(config_file, tmp_path, capfd):
    path, root, ann = config_file
    argv = [path, YOLO_W, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
            'custom_hooks.0.interval=0']
    rc, out, err = run_tool('test', argv, capfd)
    assert_one_error(rc, err, 'FeatMapVisHook.interval: must be a positive integer, got 0')
    assert not osp.exists(tmp_path / 'work' / 'vis')


# ---------------------------------------------------------------- images in a dataset run
@pytest.fixture(scope='module')
def mixed_dir(tmp_path_factory):
    """Two good images and three bad ones (a corrupt JPEG with a valid header, a text file, a
    JPEG that decodes with only a libjpeg warning)."""
    d = tmp_path_factory.mktemp('mixed')
    for i in range(2):
        write_good(d / f'good{i}.jpg', seed=i)
    (d / 'bad_corrupt.jpg').write_bytes(BAD_IMAGES['corrupt.jpg'])
    (d / 'bad_text.jpg').write_bytes(BAD_IMAGES['text.jpg'])
    (d / 'bad_sos.jpg').write_bytes(BAD_IMAGES['sos.jpg'])
    return d


def _summary(err):
    lines = [line for line in err.splitlines() if line.startswith('warning: skipped')]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


BAD_INPUT_CASES += [f'{t} directory with 3 bad images of 5' for t in IMAGE_TOOLS] + [
    'eval_faithfulness data with 3 bad images of 5', 'test.py test set with 3 bad images of 6',
    'test.py test set image of another size than annotated']


@pytest.mark.parametrize('tool', IMAGE_TOOLS)
def test_directory_with_bad_images(tool, mixed_dir, tmp_path, capfd):
    extra = ['--max-queries', '1', '--cell-width', '64'] if tool == 'attn_vis' else []
    extra += ['--cell-width', '64'] if tool in ('cam_vis', 'head_ablation') else []
    extra += ['--part', 'decoder_self'] if tool == 'head_ablation' else []
    extra += ['--topk', '1'] if tool == 'cam_vis' else []
    rc, out, err = run_tool(tool, _argv(tool, mixed_dir, _out(tmp_path), extra), capfd)
    assert rc == 0, err[-2000:]
    assert 'Traceback' not in err and not any(x.startswith('error:') for x in err.splitlines())
    line = _summary(err)
    assert 'skipped 3 of 5 image(s)' in line
    assert 'bad_corrupt.jpg (corrupt or truncated image data)' in line
    assert 'bad_text.jpg (not an image' in line
    # libjpeg's warning is the reason, not a line of its own
    assert 'bad_sos.jpg (corrupt JPEG data (libjpeg: Invalid SOS parameters' in line
    assert not any(x.startswith('Invalid SOS') for x in err.splitlines())
    written = sorted(os.listdir(_out(tmp_path)))
    stems = sorted({osp.splitext(n)[0].replace('_ablation', '') for n in written})
    assert stems == ['good0', 'good1'], written
    for name in written:
        if not name.endswith('.csv'):
            assert cv2.imread(osp.join(_out(tmp_path), name)) is not None


def test_eval_faithfulness_skips_two_bad_images(mixed_dir, tmp_path, capfd):
    rc, out, err = run_tool('eval_faithfulness', _argv(
        'eval_faithfulness', mixed_dir, _out(tmp_path), ['--score-thr', '0.5', '--topk', '1']),
        capfd)
    assert rc == 0, err[-2000:]
    assert 'skipped 3 of 5 image(s)' in _summary(err)
    import csv
    with open(osp.join(_out(tmp_path), 'faithfulness_detections.csv')) as f:
        images = {r['image'] for r in csv.DictReader(f)}
    assert images and images <= {'good0.jpg', 'good1.jpg'}
    assert '(2 images)' in open(osp.join(_out(tmp_path), 'faithfulness.md')).read()


def test_tools_test_skips_two_bad_images(config_file, tmp_path, capfd):
    path, root, ann = config_file
    data = tmp_path / 'data'
    shutil.copytree(root, data, ignore=shutil.ignore_patterns('work', 'cfg.py'))
    images = sorted(os.listdir(data / 'images'))
    (data / 'images' / images[1]).write_bytes(BAD_IMAGES['corrupt.jpg'])
    (data / 'images' / images[4]).write_bytes(b'')
    (data / 'images' / images[2]).write_bytes(BAD_IMAGES['sos.jpg'])
    # readable, but 1x1 while the annotation says otherwise: evaluated, and named
    cv2.imwrite(str(data / 'images' / images[3]), np.zeros((1, 1, 3), np.uint8))
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    cfg.test_dataloader.dataset.data_root = str(data)
    cfg.test_evaluator.ann_file = str(data / osp.basename(ann))
    cfg_path = tmp_path / 'cfg.py'
    cfg.dump(str(cfg_path))
    argv = _argv('test', str(cfg_path), _out(tmp_path))
    rc, out, err = run_tool('test', argv, capfd)
    assert rc == 0, err[-3000:]
    line = _summary(err)
    assert 'skipped 3 of 6 image(s)' in line
    assert f'{images[1]} (not an image, or corrupt' in line and f'{images[4]} (empty file)' in line
    assert f'{images[2]} (corrupt JPEG data (libjpeg: Invalid SOS parameters' in line
    sizes = [x for x in err.splitlines() if x.startswith('warning:') and 'annotation' in x]
    assert len(sizes) == 1 and f'{images[3]} (decoded 1x1, annotated ' in sizes[0], err[-2000:]
    assert images[0] not in sizes[0] and images[5] not in sizes[0]
    drawn = os.listdir(osp.join(_out(tmp_path), 'test'))
    stems = {n.split('_id')[0] for n in drawn}
    good = {osp.splitext(n)[0] for i, n in enumerate(images) if i not in (1, 2, 4)}
    assert stems == good and len(drawn) == 3 * 3  # 3 images, 3 neck levels each
    assert 'Average Precision' in out  # the COCO metric ran over the readable images


BAD_INPUT_CASES += [f'{t} directory of only bad images' for t in IMAGE_TOOLS] + [
    f'{t} single {name}' for t in IMAGE_TOOLS for name in BAD_IMAGES]


@pytest.mark.parametrize('tool', IMAGE_TOOLS)
def test_only_bad_images_is_an_error(tool, tmp_path, capfd):
    d = tmp_path / 'bad'
    d.mkdir()
    for name, data in BAD_IMAGES.items():
        (d / name).write_bytes(data)
    rc, out, err = run_tool(tool, _argv(tool, d, _out(tmp_path)), capfd)
    assert_one_error(rc, err, 'image(s)', _out(tmp_path))
    assert 'could be read' in err or 'can be read' in err


@pytest.mark.parametrize('name', list(BAD_IMAGES))
@pytest.mark.parametrize('tool', IMAGE_TOOLS)
def test_single_bad_image_is_an_error(tool, name, tmp_path, capfd):
    path = tmp_path / name
    path.write_bytes(BAD_IMAGES[name])
    rc, out, err = run_tool(tool, _argv(tool, path, _out(tmp_path)), capfd)
    assert_one_error(rc, err, f'cannot read image {path}', _out(tmp_path))


# --------------------------------------------------------------- eval_faithfulness annotations
ANNOTATION_CASES = {
    'invalid JSON': ('{"images": [', 'is not valid JSON'),
    'a JSON list': ('[1, 2, 3]', 'is not a COCO detection file'),
    'annotation without bbox': ('{"images": [{"id": 1, "file_name": "good0.jpg"}], '
                                '"categories": [{"id": 1}], '
                                '"annotations": [{"image_id": 1, "category_id": 1}]}',
                                "missing key 'bbox'"),
}
BAD_INPUT_CASES += [f'eval_faithfulness annotations.json {c}' for c in ANNOTATION_CASES]


@pytest.mark.parametrize('case', list(ANNOTATION_CASES))
def test_bad_annotation_file(case, tmp_path, capfd):
    text, message = ANNOTATION_CASES[case]
    data = tmp_path / 'data'
    (data / 'images').mkdir(parents=True)
    write_good(data / 'images' / 'good0.jpg')
    (data / 'annotations.json').write_text(text)
    rc, out, err = run_tool('eval_faithfulness', _argv('eval_faithfulness', data,
                                                       _out(tmp_path)), capfd)
    assert_one_error(rc, err, message, _out(tmp_path))
    assert 'annotations.json' in err


# ------------------------------------------------------------- target layer off the score path
BAD_INPUT_CASES += ['cam_vis target layer that does not run', 'cam_vis layer without gradient']


def test_cam_target_layer_that_does_not_run(good_image, tmp_path, capfd):
    # a ModuleList is iterated by its owner, never called: no output, no gradient
    argv = _argv('cam_vis', good_image, _out(tmp_path),
                 ['--target-layers', 'bbox_head.head_module.convs_pred', '--topk', '1'])
    rc, out, err = run_tool('cam_vis', argv, capfd)
    assert_one_error(rc, err, 'target layer bbox_head.head_module.convs_pred did not run',
                     _out(tmp_path))


def test_cam_layer_without_gradient_names_the_layer():
    """A layer that runs but that the explained score does not depend on."""
    import torch
    from torch import nn

    from mmattnvis.methods.cam import LayerNotOnScorePath, MultiLevelActivationsAndGradients

    class TwoBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)

        def forward(self, x):
            self.unused(x)  # runs, its output is dropped
            return self.used(x).mean()

    model = TwoBranch()
    acg = MultiLevelActivationsAndGradients(model, [model.used, model.unused], None)
    acg.require_gradients = True
    acg(torch.rand(1, 3, 8, 8, requires_grad=True)).backward()
    with pytest.raises(LayerNotOnScorePath) as err:
        acg.gradients
    assert err.value.index == 1 and err.value.ran
    acg.release()


# ------------------------------------------------------------------ heads in deformable mode
BAD_INPUT_CASES += ['attn_vis --heads 99 --mode deformable', 'attn_vis --heads -9 deformable',
                    'attn_vis --heads -1 deformable', 'attn_vis --heads 9, nothing detected']


@pytest.mark.parametrize('head,thr', [('99', '0'), ('-9', '0'), ('-1', '0'), ('9', '1')])
def test_deformable_heads_out_of_range(head, thr, good_image, tmp_path, capfd):
    """Heads count from 0 and are checked against the model before anything runs, also when
    nothing is detected (``--score-thr 1``: --heads 9 was accepted silently)."""
    argv = _argv('attn_vis', good_image, _out(tmp_path), ['--heads', head, '--score-thr', thr])
    rc, out, err = run_tool('attn_vis', argv, capfd)
    assert_one_error(rc, err, f'head {head} does not exist; this attention has heads 0..7',
                     _out(tmp_path))
    if head.startswith('-'):
        assert 'negative indices are refused' in err


# ------------------------------------------------------------- writes and planted symlinks
def _plant(out_dir, name, victim):
    os.makedirs(out_dir, exist_ok=True)
    os.symlink(victim, osp.join(out_dir, name))


def test_atomic_write_replaces_a_planted_link_not_its_target(tmp_path, monkeypatch):
    from mmattnvis.utils import fileio
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    out = tmp_path / 'out'
    _plant(out, 'table.csv', victim)
    fileio.write_text_atomic(str(out / 'table.csv'), 'a,b\n')
    assert victim.read_text() == 'precious'
    assert not osp.islink(out / 'table.csv') and (out / 'table.csv').read_text() == 'a,b\n'
    # a link planted at the temporary name is never opened either: a new name is drawn
    names = iter(['0' * 16, '1' * 16])
    monkeypatch.setattr(fileio.secrets, 'token_hex', lambda n: next(names))
    _plant(out, f".tmp-{'0' * 16}-x.md", victim)
    fileio.write_text_atomic(str(out / 'x.md'), '# x\n')
    assert victim.read_text() == 'precious' and (out / 'x.md').read_text() == '# x\n'
    assert sorted(os.listdir(out)) == sorted(['table.csv', 'x.md', f".tmp-{'0' * 16}-x.md"])


def test_faithfulness_tables_do_not_follow_links(tmp_path):
    from mmattnvis.apis.faithfulness_runner import FaithfulnessTable
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    out = tmp_path / 'out'
    for name in ('faithfulness.md', 'faithfulness.csv', 'faithfulness_detections.csv'):
        _plant(out, name, victim)
    table = FaithfulnessTable([dict(image='a.jpg', detection=0, label=0, score=0.9,
                                    method='gradcam', pointing_game=1.0, pointing_game_gt=None,
                                    energy_pg=0.5, deletion_auc=0.2, insertion_auc=None)])
    paths = table.write(str(out), 'title')
    assert victim.read_text() == 'precious'
    assert all(not osp.islink(p) for p in paths)
    assert 'gradcam' in open(paths[0]).read()


def test_featmap_image_does_not_follow_a_link(good_image, tmp_path, capfd):
    victim = tmp_path / 'victim.jpg'
    victim.write_bytes(b'precious')
    _plant(_out(tmp_path), 'good.jpg', victim)
    argv = _argv('featmap_vis', good_image, _out(tmp_path), ['--target-layers', 'neck'])
    rc, out, err = run_tool('featmap_vis', argv, capfd)
    assert rc == 0, err[-2000:]
    assert victim.read_bytes() == b'precious'
    assert cv2.imread(osp.join(_out(tmp_path), 'good.jpg')) is not None


# ------------------------------------------------------------------ tools/train.py checkpoints
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch of the shapes RetinaNet on 4 images at 64 px: work dir with epoch_1.pth."""
    from mmattnvis.apis.model import load_config
    from mmattnvis.datasets import generate_shapes_dataset
    root = tmp_path_factory.mktemp('train')
    generate_shapes_dataset(str(root / 'data'), num_images=4, seed=3)
    cfg = load_config(osp.join(ROOT, 'configs', 'shapes', 'retinanet_r18w32_fpn_shapes.py'))
    dl = cfg.train_dataloader
    dl.batch_size, dl.num_workers, dl.persistent_workers = 2, 0, False
    dl.dataset.update(data_root=str(root / 'data'), ann_file='annotations.json',
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
    cfg.log_level = 'WARNING'
    cfg_path = root / 'cfg.py'
    cfg.dump(str(cfg_path))
    work = root / 'work'
    rc = TOOLS['train'].main([str(cfg_path), '--work-dir', str(work)])
    assert rc == 0 and osp.isfile(work / 'epoch_1.pth')
    return str(cfg_path), work


def test_train_resumes_its_own_checkpoint_weights_only(trained, capfd):
    import torch

    from mmattnvis.utils.checkpoint import safe_runner_checkpoints
    cfg_path, work = trained
    ckpt = str(work / 'epoch_1.pth')
    with pytest.raises(Exception, match='HistoryBuffer'):  # what plain weights-only says
        torch.load(ckpt, weights_only=True)
    capfd.readouterr()
    rc, out, err = run_tool('train', [cfg_path, '--work-dir', str(work), '--resume'], capfd)
    assert rc == 0, err[-3000:]
    assert 'Traceback' not in err
    # MMEngine's resume read the file through mmattnvis' weights-only loader
    assert f'Loads checkpoint by local_safely backend from path: {ckpt}' in out + err
    # the patch is undone afterwards
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
    assert CheckpointLoader._schemes[''] is load_from_local
    with safe_runner_checkpoints():
        assert CheckpointLoader._schemes[''] is not load_from_local


BAD_INPUT_CASES += ['train.py hook configuration error', 'train.py load_from text file']


def test_train_hook_config_error_and_bad_load_from(trained, tmp_path, capfd):
    from mmengine.config import Config
    cfg_path, work = trained
    cfg = Config.fromfile(cfg_path)
    cfg.custom_hooks = [dict(type='mmattnvis.FeatMapVisHook', interval=0)]
    hook_cfg = str(tmp_path / 'hook_cfg.py')
    cfg.dump(hook_cfg)
    argv = [hook_cfg, '--work-dir', str(tmp_path / 'w')]
    rc, out, err = run_tool('train', argv, capfd)
    assert_one_error(rc, err, 'FeatMapVisHook.interval: must be a positive integer, got 0')
    text = tmp_path / 'text.pth'
    text.write_text('hello')
    argv = [cfg_path, '--work-dir', str(tmp_path / 'w2'), '--cfg-options', f'load_from={text}']
    rc, out, err = run_tool('train', argv, capfd)
    assert_one_error(rc, err, 'is not a PyTorch checkpoint')


def test_bad_input_count():
    """The issue's closing note counts the bad inputs these tests feed."""
    assert len(BAD_INPUT_CASES) == len(set(BAD_INPUT_CASES))
    print(f'\n{len(BAD_INPUT_CASES)} bad inputs tested')
