"""Model-randomisation sanity check on the shipped shapes YOLOv5-n, and the new faithfulness
columns through ``python tools/eval_faithfulness.py`` as a user runs it."""
import csv
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mmattnvis.apis import build_test_pipeline, init_model, prepare_batch
from mmattnvis.apis.randomisation import (
    randomised_cascade,
    sanity_correlations,
    stage_parameters,
)
from mmattnvis.datasets import generate_shapes_dataset
from mmattnvis.methods.cam import detect
from mmattnvis.methods.explainers import build_explainer
from mmattnvis.metrics import sanity_passed

from conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
WEIGHTS = osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth')


@pytest.fixture(scope='module')
def shapes_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes_dataset(str(root), num_images=2, seed=5)
    return root


@pytest.fixture(scope='module')
def yolo():
    return init_model(CONFIG, WEIGHTS, device='cpu')


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_cascade_randomises_top_down_and_leaves_the_model_alone(yolo):
    before = _state(yolo)
    seen = []
    for stage, clone in randomised_cascade(yolo, seed=0):
        assert clone is not yolo
        seen.append(stage)
        for part in ('head', 'neck', 'backbone'):
            changed = [not torch.equal(a, b) for a, b in zip(stage_parameters(clone, part),
                                                             stage_parameters(yolo, part))
                       if a.numel() > 1]
            assert changed
            # every stage up to this one is redrawn, the ones below are still trained
            assert all(changed) if part in seen else not any(changed), (stage, part)
    assert seen == ['head', 'neck', 'backbone']
    after = _state(yolo)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_an_explainer_blind_to_the_weights_fails_and_a_gradient_map_passes(yolo, shapes_dir):
    path = sorted((shapes_dir / 'images').iterdir())[0]
    img = cv2.imread(str(path))
    data = prepare_batch([img], build_test_pipeline(yolo.cfg), [str(path)])
    detected = detect(yolo, data, 0.3, 2)
    n = len(detected.detections[0])
    assert n >= 1
    edges = cv2.Canny(img, 50, 150).astype(np.float32)  # the input's edges: no model involved
    cam = build_explainer('hirescam', ['backbone.stage2'])

    def hirescam(model):
        return [m.data for m in cam.explain(model, detected=detected).maps[0]]

    originals = {'edges': [edges] * n, 'hirescam': hirescam(yolo)}
    rhos = sanity_correlations(yolo, {'edges': lambda model: [edges] * n,
                                      'hirescam': hirescam}, originals, seed=0)
    for per_det in rhos['edges']:
        assert [k for k in per_det if k != 'flat'] == ['head', 'neck', 'backbone']
        assert per_det['flat'] == 0.0
        assert all(per_det[k] == pytest.approx(1.0) for k in ('head', 'neck', 'backbone'))
        assert sanity_passed(per_det) is False
    # HiResCAM at the second backbone stage depends on the weights: its ranking is gone
    for per_det in rhos['hirescam']:
        assert per_det['backbone'] < 0.5 and sanity_passed(per_det) is True
        assert per_det['flat'] in (0.0, 1.0)


def test_eval_faithfulness_cli_new_columns(shapes_dir, tmp_path):
    out, res, rep = tmp_path / 'f', tmp_path / 'res', tmp_path / 'rep'
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'eval_faithfulness.py'), CONFIG, WEIGHTS,
         '--data', str(shapes_dir), '--methods', 'hirescam', '--target-layers', 'neck',
         '--steps', '4', '--topk', '2', '--sanity', '--baselines', 'random', 'box', 'blur',
         '--box-curves',
         '--device', 'cpu', '--out-dir', str(out),
         '--save-results', str(res), '--report', str(rep)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / 'faithfulness_detections.csv') as f:
        rows = list(csv.DictReader(f))
    assert {r['method'] for r in rows} == {'hirescam', 'random', 'box', 'blur'}
    for r in rows:
        for key in ('energy_mask', 'mask_iou', 'effective_area', 'insertion_auc',
                    'deletion_auc', 'sanity_head', 'sanity_neck', 'sanity_backbone', 'seconds',
                    'box_deletion_auc', 'box_insertion_auc', 'box_oa'):
            assert r[key] != '', (key, r)
        for key in ('energy_mask', 'mask_iou', 'effective_area', 'insertion_auc', 'deletion_auc',
                    'box_insertion_auc', 'box_deletion_auc'):
            assert 0.0 <= float(r[key]) <= 1.0
        for pre in ('', 'box_'):
            assert float(r[pre + 'oa']) == pytest.approx(float(r[pre + 'insertion_auc'])
                                                         - float(r[pre + 'deletion_auc']),
                                                         abs=1e-9)
        assert -1.0 <= float(r['sanity_backbone']) <= 1.0 and r['sanity_pass'] in ('0.0', '1.0')
        assert r['sanity_flat'] in ('0.0', '1.0')
        assert float(r['seconds']) >= 0
    by = {m: [r for r in rows if r['method'] == m] for m in ('hirescam', 'random', 'box', 'blur')}
    assert len({len(rs) for rs in by.values()}) == 1  # every map scored on every detection
    mean = {m: {k: np.mean([float(r[k]) for r in rs]) for k in ('energy_mask', 'mask_iou')}
            for m, rs in by.items()}
    # HiResCAM's mass sits on the object's own pixels; the random map's does not
    assert mean['hirescam']['energy_mask'] > 2 * mean['random']['energy_mask']
    # the baselines do not use the model: they keep their ranking and fail the check
    for m in ('random', 'box', 'blur'):
        assert all(float(r['sanity_backbone']) == pytest.approx(1.0) for r in by[m]), m
        assert all(r['sanity_pass'] == '0.0' for r in by[m]), m
        assert all(r['layer'] == '' for r in by[m]), m
    # the box map is the box: all of it is above half its maximum, all its mass is in the box
    # and its peak in it; the blob's half-maximum part is the box's inscribed ellipse (pi / 4)
    for r in by['box']:
        assert float(r['effective_area']) == 1.0 and float(r['energy_pg']) == pytest.approx(1.0)
        assert r['pointing_game'] == '1.0'
    for r in by['blur']:
        assert r['pointing_game'] == '1.0' and 0.4 < float(r['energy_pg']) < 0.9
        assert float(r['effective_area']) == pytest.approx(np.pi / 4, abs=0.06)
    with open(out / 'faithfulness.csv') as f:
        summary = {r['method']: r for r in csv.DictReader(f)}
    assert float(summary['hirescam']['oa']) == pytest.approx(
        np.mean([float(r['oa']) for r in by['hirescam']]), abs=1e-9)
    md = (out / 'faithfulness.md').read_text()
    for head in ('Mask-IoU', 'effective area', 'OA (ins - del)', 'in-box OA', 'sanity rho',
                 's / detection'):
        assert head in md
    assert 'Mask-IoU' in proc.stdout
    # the saved records and the report carry the same rows
    index = json.load(open(res / 'index.json'))
    recs = [json.load(open(res / 'records' / f'{stem}.json')) for stem in index['records']]
    saved = [row for rec in recs for row in rec['info']['rows']]
    assert len(saved) == len(rows) and all('mask_iou' in r and 'sanity_pass' in r for r in saved)
    js = (rep / 'data' / 'index.js').read_text()
    assert '"mask_iou"' in js and '"effective_area"' in js and '"sanity_backbone"' in js
    assert '"box_oa"' in js
