"""``tools/val.py`` on a user's config that inherits a shipped shapes config and adds a hook with
``report_dir`` (issue 24, item 1): the run ends with exit code 0 and the hook's report holds every
validation sample. The shipped configs keep ``save_best`` in their ``CheckpointHook``, whose
``after_val_epoch`` needs state that only ``before_train`` sets; before the fix ``runner.val()``
failed there with ``AttributeError: 'CheckpointHook' object has no attribute 'file_backend'``.

The data is made with the project's generator, as the README tells a user
(``tools/make_shapes.py``), kept tiny (3 images, 128-160 px) so each run takes seconds.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import ROOT

HOOKS = {
    'dino_slim_shapes': "dict(type='mmattnvis.AttentionVisHook', mode='deformable', interval=1, "
                        "report_dir='report')",
    'yolov5_n_shapes': "dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'], "
                       "channel_reduction='squeeze_mean', interval=1, report_dir='report')",
}


def _run(args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable] + args, cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def val_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    proc = _run([osp.join('tools', 'make_shapes.py'), '--out-dir', str(root / 'val'),
                 '--num-images', '3', '--seed', '5', '--min-size', '128', '--max-size', '160'])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


@pytest.mark.parametrize('model', list(HOOKS))
def test_val_on_shipped_config_builds_the_hook_report(model, val_data, tmp_path):
    if model.startswith('yolo'):
        pytest.importorskip('mmyolo', reason='the YOLOv5-n config needs MMYOLO')
    cfg = tmp_path / 'my_cfg.py'
    cfg.write_text(f"_base_ = 'mmattnvis::shapes/{model}.py'\n"
                   f"data_root = '{val_data}/'\n"
                   "val_dataloader = dict(dataset=dict(data_root=data_root))\n"
                   "val_evaluator = dict(ann_file=data_root + 'val/annotations.json')\n"
                   f"custom_hooks = [{HOOKS[model]}]\n")
    work = tmp_path / 'work'
    proc = _run([osp.join('tools', 'val.py'), str(cfg), f'mmattnvis::shapes/{model}.pth',
                 '--work-dir', str(work)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr and 'file_backend' not in proc.stderr
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    report = work / 'report' / 'val'
    assert (report / 'index.html').is_file()
    records = sorted(n for n in os.listdir(report / 'data') if re.fullmatch(r'r\d+\.js', n))
    assert len(records) == 3, records  # every validation sample is in the report
    index = (report / 'data' / 'index.js').read_text()
    for name in os.listdir(val_data / 'val' / 'images'):
        assert osp.splitext(name)[0] in index
    assert not any(n.startswith('best_') for n in os.listdir(work))  # nothing saved by val
