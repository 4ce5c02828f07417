"""The model-zoo sweep (tools/zoo_check.py, mmattnvis.zoo): discovery, classification, the
matrix files, a fixed CI subset of configs that must pass, and the CLI."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from mmattnvis import zoo  # noqa: E402
from mmattnvis.cli import zoo_check  # noqa: E402
from mmattnvis.utils.errors import UserInputError  # noqa: E402

from conftest import ROOT

# Small, fast configs across families; every one must pass.
CI_SUBSET = [
    'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    'mmdet::yolox/yolox_tiny_8xb8-300e_coco.py',
    'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py',
    'mmdet::centernet/centernet_r18_8xb16-crop512-140e_coco.py',
    'mmdet::detr/detr_r18_8xb2-500e_coco.py',
    'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py',
    'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
    'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py',
    'mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py',
    'mmyolo::rtmdet/rtmdet_tiny_syncbn_fast_8xb32-300e_coco.py',
]


# -- discovery ---------------------------------------------------------------------------------
@pytest.fixture
def fake_roots(tmp_path):
    files = ['_base_/models/retinanet_r50_fpn.py', '_base_/default_runtime.py',
             'retinanet/retinanet_r18_fpn_1x_coco.py', 'retinanet/metafile.yml',
             'retinanet/_base_/local_base.py', 'retinanet/_base_.py',
             'yolox/yolox_s_8xb8-300e_coco.py', 'yolox/README.md']
    for rel in files:
        path = tmp_path / 'mmdet' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('')
    (tmp_path / 'mmyolo' / 'yolov5').mkdir(parents=True)
    (tmp_path / 'mmyolo' / 'yolov5' / 'yolov5_n.py').write_text('')
    return {'mmdet': str(tmp_path / 'mmdet'), 'mmyolo': str(tmp_path / 'mmyolo')}


def test_discovery_skips_base_and_non_configs(fake_roots):
    entries = zoo.discover_configs(roots=fake_roots)
    assert [(e.package, e.family, e.config) for e in entries] == [
        ('mmdet', 'retinanet', 'retinanet/retinanet_r18_fpn_1x_coco.py'),
        ('mmdet', 'yolox', 'yolox/yolox_s_8xb8-300e_coco.py'),
        ('mmyolo', 'yolov5', 'yolov5/yolov5_n.py'),
    ]
    assert all(osp.isfile(e.path) for e in entries)


def test_discovery_filter_matches_package_and_path(fake_roots):
    assert [e.config for e in zoo.discover_configs('yolo', roots=fake_roots)] == [
        'yolox/yolox_s_8xb8-300e_coco.py', 'yolov5/yolov5_n.py']
    assert [e.package for e in zoo.discover_configs('^mmyolo/', roots=fake_roots)] == ['mmyolo']
    with pytest.raises(UserInputError, match='bad --filter regex'):
        zoo.discover_configs('(', roots=fake_roots)
    with pytest.raises(UserInputError, match='no config matches'):
        zoo.discover_configs('nothing-like-this', roots=fake_roots)


def test_discovery_of_installed_packages():
    entries = zoo.discover_configs()
    assert len(entries) > 500
    assert not [e for e in entries if '_base_' in e.config]
    assert {'mmdet', 'mmyolo'} == {e.package for e in entries}
    found = zoo.discover_configs('retinanet_r18_fpn_1x_coco')
    assert [(e.package, e.family, e.config) for e in found] == [
        ('mmdet', 'retinanet', 'retinanet/retinanet_r18_fpn_1x_coco.py')]


# -- classification ----------------------------------------------------------------------------
def _raised(exc, cause=None):
    """``exc`` as raised (with a traceback), from inside the handling of ``cause``."""
    try:
        if cause is None:
            raise exc
        try:
            raise cause
        except Exception:
            raise exc from None  # like load_config: the context survives
    except Exception as err:
        return err


@pytest.mark.parametrize('exc,status,fragment', [
    (ImportError('cannot import name X from timm'), 'skip', 'missing package: ImportError'),
    (ModuleNotFoundError("No module named 'mmpretrain'"), 'skip', "'mmpretrain'"),
    (RuntimeError('Please install fairscale to use this backbone'), 'skip', 'missing package'),
    (AssertionError('Torch not compiled with CUDA enabled'), 'skip', 'needs CUDA'),
    (RuntimeError('No CUDA GPUs are available'), 'skip', 'needs CUDA'),
    (RuntimeError('carafe_forward_impl: implementation for device cpu not found.'), 'skip',
     'needs CUDA'),
    (FileNotFoundError(2, 'No such file or directory', 'data/lvis_v1/freq.json'), 'skip',
     'missing external file'),
    (zoo.NeedsExternalData('the test pipeline loads precomputed proposals'), 'skip',
     'missing external file'),
    (zoo.NotADetector('model type ByteTrack is not a detector'), 'skip', 'ByteTrack'),
    (ValueError('feature map has shape (3, 4)\nsecond line'), 'fail',
     'ValueError: feature map has shape (3, 4)'),
    (AssertionError('captured neck.0 has shape (2, 8)'), 'fail', 'AssertionError: captured'),
    (zoo.DownloadAttempted('tried to download https://x/y.pth'), 'fail', 'DownloadAttempted'),
])
def test_classify_exception(exc, status, fragment):
    got, reason = zoo.classify_exception(_raised(exc))
    assert got == status and fragment in reason, reason
    assert '\n' not in reason


def test_classify_wrapped_import_error_is_skip():
    # load_config turns a failed custom import into a one-line UserInputError
    err = _raised(UserInputError('config x.py could not be read: cannot import mmpretrain'),
                  cause=ModuleNotFoundError("No module named 'mmpretrain'"))
    assert zoo.classify_exception(err) == ('skip', "missing package: ModuleNotFoundError: "
                                                   "No module named 'mmpretrain'")
    err = _raised(UserInputError('config /a/b/x.py could not be read: mmrazor is not installed, '
                                 'please install it'), cause=KeyError('x'))
    assert zoo.classify_exception(err) == (
        'skip', 'missing package: config could not be read: mmrazor is not installed, please '
        'install it')
    # our own one-line errors stay failures
    assert zoo.classify_exception(_raised(UserInputError('unknown layer neck.x')))[0] == 'fail'


def test_no_downloads_guard_is_scoped():
    import torch.hub
    from mmengine.runner.checkpoint import CheckpointLoader
    original = torch.hub.load_state_dict_from_url
    with zoo.no_downloads():
        with pytest.raises(zoo.DownloadAttempted, match='https://example.com/w.pth'):
            torch.hub.load_state_dict_from_url('https://example.com/w.pth')
        with pytest.raises(zoo.DownloadAttempted, match='torchvision://resnet50'):
            CheckpointLoader.load_checkpoint('torchvision://resnet50')
    assert torch.hub.load_state_dict_from_url is original


def test_shrink_test_pipeline():
    from mmengine.config import Config
    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(1333, 800), keep_ratio=True),
        dict(type='mmdet.FixShapeResize', width=640, height=640),
        dict(type='LetterResize', scale=[640, 640]),
        dict(type='PackDetInputs')]))))
    assert zoo.shrink_test_pipeline(cfg, 96)
    p = cfg.test_dataloader.dataset.pipeline
    assert p[1].scale == (96, 96) and p[1].keep_ratio
    assert (p[2].width, p[2].height) == (96, 96) and p[3].scale == (96, 96)


def test_lighten_test_cfg_only_in_test_cfg_and_queries():
    from mmengine.config import Config
    cfg = Config(dict(model=dict(
        type='X', train_cfg=dict(rpn_proposal=dict(max_per_img=2000)),
        test_cfg=dict(rpn=dict(max_per_img=1000),
                      rcnn=dict(max_per_img=100, score_thr=1e-4,
                                nms=dict(type='nms', iou_threshold=0.5))),
        bbox_head=dict(test_cfg=dict(max_per_img=5, score_thr=0.3)), num_queries=900)))
    assert zoo.lighten_test_cfg(cfg, 20)
    assert cfg.model.test_cfg.rpn.max_per_img == 20 and cfg.model.test_cfg.rcnn.max_per_img == 20
    assert cfg.model.test_cfg.rcnn.score_thr == 0.05
    assert cfg.model.test_cfg.rcnn.nms == dict(type='nms', iou_threshold=0.5, class_agnostic=True)
    assert cfg.model.bbox_head.test_cfg.max_per_img == 5
    assert cfg.model.bbox_head.test_cfg.score_thr == 0.3
    assert cfg.model.train_cfg.rpn_proposal.max_per_img == 2000
    assert cfg.model.num_queries == 100


@pytest.mark.parametrize('config,fragment', [
    ('mmdet::bytetrack/bytetrack_yolox_x_8xb4-80e_crowdhuman-mot17halftrain_test-mot17halfval.py',
     'ByteTrack is not a detector'),
    ('mmdet::_base_/datasets/coco_detection.py', 'no "model" entry'),
    ('mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py', 'mmpretrain'),
    ('mmdet::fast_rcnn/fast-rcnn_r50_fpn_1x_coco.py', 'precomputed proposals'),
    ('mmdet::soft_teacher/soft-teacher_faster-rcnn_r50-caffe_fpn_180k_semi-0.01-coco.py',
     'semi-supervised'),
])
def test_check_config_skips_what_cannot_run_here(config, fragment):
    record = zoo.check_config(config)
    assert record['status'] == 'skip' and fragment in record['reason'], record


# -- matrix files ------------------------------------------------------------------------------
def _rec(package, config, status, reason='', seconds=1.0):
    return dict(package=package, family=config.split('/')[0], config=config, status=status,
                reason=reason, seconds=seconds)


def test_write_matrix_counts_and_pass_rate(tmp_path):
    records = [
        _rec('mmdet', 'retinanet/a.py', 'pass'),
        _rec('mmdet', 'retinanet/b.py', 'fail', 'ValueError: x | y'),
        _rec('mmdet', 'convnext/c.py', 'skip', "missing package: No module named 'mmpretrain'"),
        _rec('mmdet', 'fcos/d.py', 'pass', seconds=2.5),
        _rec('mmyolo', 'yolov5/e.py', 'pass'),
        _rec('mmyolo', 'razor/f.py', 'skip', 'missing package: mmrazor'),
    ]
    md_path, json_path = zoo.write_matrix(records, str(tmp_path), 'note line')
    with open(json_path) as f:
        data = json.load(f)
    assert len(data) == 6 and {tuple(sorted(r)) for r in data} == {
        ('config', 'family', 'package', 'reason', 'seconds', 'status')}
    assert [r['config'] for r in data][:4] == ['convnext/c.py', 'fcos/d.py', 'retinanet/a.py',
                                               'retinanet/b.py']
    assert zoo.read_matrix(str(tmp_path)) == data
    md = open(md_path).read()
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
            for line in md.splitlines() if line.startswith('| mm') or line.startswith('| all')}
    assert rows['mmdet'] == ['2', '1', '1', '4', '66.7 %']
    assert rows['mmyolo'] == ['1', '0', '1', '2', '100.0 %']
    assert rows['all'] == ['3', '1', '2', '6', '75.0 %']
    assert zoo.summarize(records)['pass_rate'] == pytest.approx(0.75)
    for group in ('mmdet/convnext', 'mmdet/fcos', 'mmdet/retinanet', 'mmyolo/razor',
                  'mmyolo/yolov5'):
        assert f'## {group}\n' in md
    assert '| retinanet/b.py | fail | 1.0 | ValueError: x \\| y |' in md
    assert '| fcos/d.py | pass | 2.5 |  |' in md
    assert 'note line' in md
    assert 'Skipped: missing package 2.' in md
    assert ('## Failures\n\n| config | reason |\n|---|---|\n'
            '| mmdet/retinanet/b.py | ValueError') in md


def test_read_matrix_rejects_other_json(tmp_path):
    (tmp_path / 'zoo_matrix.json').write_text('{"a": 1}')
    with pytest.raises(UserInputError, match='not a zoo matrix'):
        zoo.read_matrix(str(tmp_path))
    assert zoo.read_matrix(str(tmp_path / 'none')) == []


# -- the CI subset -----------------------------------------------------------------------------
@pytest.mark.parametrize('config', CI_SUBSET)
def test_ci_subset_passes(config):
    record = zoo.check_config(config)
    assert record['status'] == 'pass', record
    assert record['package'] == config.split('::')[0]
    assert record['config'] == config.split('::')[1]


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_filter_writes_matrix_and_resumes(tmp_path, capfd):
    out = tmp_path / 'zoo'
    args = ['--filter', 'retinanet_r18_fpn_1x_coco|mmyolo/yolov5/yolov5_n-v61_syncbn_fast_8xb16',
            '--jobs', '2', '--out', str(out), '--timeout', '300']
    assert zoo_check.main(args + ['--save-panels']) == 0
    stdout, stderr = capfd.readouterr()
    assert '2 pass, 0 fail, 0 skip of 2 config(s); pass rate 100.0 %' in stdout, stderr
    import cv2
    panels = sorted(str(p.relative_to(out / 'panels')) for p in (out / 'panels').rglob('*.png'))
    assert panels == ['mmdet/retinanet/retinanet_r18_fpn_1x_coco.png',
                      'mmyolo/yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.png']
    panel = cv2.imread(str(out / 'panels' / panels[0]))
    assert panel.shape == (96, 128, 3) and panel.std() > 5  # the 128x96 synthetic image
    data = json.loads((out / 'zoo_matrix.json').read_text())
    assert [(r['package'], r['config'], r['status']) for r in data] == [
        ('mmdet', 'retinanet/retinanet_r18_fpn_1x_coco.py', 'pass'),
        ('mmyolo', 'yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py', 'pass')]
    assert all(0 < r['seconds'] < 300 for r in data)
    md = (out / 'zoo_matrix.md').read_text()
    assert '## mmdet/retinanet' in md and '## mmyolo/yolov5' in md
    assert '| all | 2 | 0 | 0 | 2 | 100.0 % |' in md
    assert not (out / 'logs').exists()  # kept only for configs that did not pass

    assert zoo_check.main(args + ['--resume']) == 0
    stdout, _ = capfd.readouterr()
    assert '2 of 2 config(s) already in' in stdout
    assert json.loads((out / 'zoo_matrix.json').read_text()) == data


def _sleeping_config(tmp_path, name, seconds):
    """A config whose loading sleeps (MMEngine configs are Python and run when loaded)."""
    path = tmp_path / name
    path.write_text(f'import time\ntime.sleep({seconds})\nmodel = dict(type="Nope")\n')
    return zoo.ConfigEntry('mmdet', 'sleepy', name, str(path))


def test_sweep_timeout_is_a_failure(tmp_path):
    """Deterministic: the worker sleeps far past the timeout."""
    entries = [_sleeping_config(tmp_path, 'slow.py', 60)]
    records = zoo.run_sweep(entries, timeout=1.0, log_dir=str(tmp_path / 'logs'))
    assert [(r['status'], r['reason']) for r in records] == [('fail', 'timeout after 1s')]
    assert records[0]['seconds'] < 30  # killed, not waited for


def test_sweep_timeout_holds_when_the_result_arrives_late(tmp_path):
    """A worker that answers after the timeout but before the next poll is still a timeout."""
    entries = [_sleeping_config(tmp_path, 'late.py', 1.2)]
    records = zoo.run_sweep(entries, timeout=1.0, log_dir=str(tmp_path / 'logs'))
    assert [(r['status'], r['reason']) for r in records] == [('fail', 'timeout after 1s')]


def test_cli_bad_regex_one_line_via_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'zoo_check.py'), '--filter',
                           '(unclosed', '--out', str(tmp_path / 'out')],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count('\n') == 1, proc.stderr
    assert proc.stderr.startswith("error: bad --filter regex '(unclosed'"), proc.stderr
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args,message', [
    (['--filter', 'no-such-config-anywhere'], 'error: no config matches --filter'),
    (['--jobs', '0'], 'error: argument --jobs: must be >= 1'),
    (['--img-size', '8'], 'error: argument --img-size: must be >= 32'),
])
def test_cli_bad_input_one_line(args, message, tmp_path, capfd):
    try:
        rc = zoo_check.main(args + ['--out', str(tmp_path / 'out')])
    except SystemExit as exc:  # argparse errors exit from parse_args
        rc = exc.code
    _, err = capfd.readouterr()
    assert rc == 2
    assert err.count('\n') == 1 and err.startswith(message), err
    assert not (tmp_path / 'out').exists()


def test_strip_pretrained_drops_teacher_checkpoints_and_mmsyncbn():
    """Found by the sweep: LAD's ``teacher_ckpt`` would download, and mmcv's ``MMSyncBN`` cannot
    be built without a process group."""
    from mmattnvis.apis.model import strip_pretrained
    cfg = dict(type='LAD', teacher_ckpt='https://download.openmmlab.com/x.pth',
               backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='torchvision://r50'),
                             norm_cfg=dict(type='MMSyncBN', requires_grad=True)),
               neck=dict(norm_cfg=dict(type='SyncBN')), pretrained='open-mmlab://x')
    out = strip_pretrained(cfg)
    assert out['teacher_ckpt'] is None and out['pretrained'] is None
    assert out['backbone']['init_cfg'] is None
    assert out['backbone']['norm_cfg'] == dict(type='BN', requires_grad=True)
    assert out['neck']['norm_cfg']['type'] == 'SyncBN'  # torch's SyncBN builds without a group
