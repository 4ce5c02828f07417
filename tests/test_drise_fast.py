"""D-RISE on a checked inference copy (mmattnvis.methods.drise_fast, ``--drise-fast``): the
user's model is untouched and its hooks do not fire for the masked passes, the copy's maps equal
the model's, a copy that predicts differently (or cannot be made) is not used and the run says
why, and the CLI's records say which ran."""
import copy
import threading

import numpy as np
import pytest
import torch

from mmattnvis.methods import drise_fast
from mmattnvis.methods.drise import DRISE
from mmattnvis.methods.drise_auto import pearson
from mmattnvis.methods.drise_fast import FastPredictor, disagreement, inference_copy

from conftest import hook_count

CONFIG = 'mmattnvis::shapes/yolov5_n_shapes.py'
WEIGHTS = 'mmattnvis::shapes/yolov5_n_shapes.pth'


@pytest.fixture(scope='module')
def shapes():
    """The shipped shapes YOLOv5-n and one prepared shapes image with its detections."""
    from mmattnvis.apis import build_test_pipeline, init_model, prepare_batch
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.methods.cam import detect
    model = init_model(CONFIG, WEIGHTS, device='cpu')
    img = make_shapes_image(np.random.default_rng(3))[0]
    data = prepare_batch([img], build_test_pipeline(model.cfg), ['shapes.png'])
    detected = detect(model, data, 0.3, 2)
    assert detected.detections[0], 'the shipped model detects the shapes'
    return model, detected


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _targets(detected):
    from mmattnvis.methods.drise_core import Predictions
    return Predictions.from_detections(detected.detections[0])


def test_copy_is_folded_and_the_model_is_untouched(shapes):
    model, detected = shapes
    before = _state(model)
    types = [type(m) for m in model.modules()]
    marker = model.backbone.register_forward_hook(lambda *a: None)
    try:
        dup = inference_copy(model, channels_last=True)
        assert hook_count(dup) == 0 and hook_count(model) >= 1
    finally:
        marker.remove()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) > 20
    assert not [m for m in dup.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    conv = next(m for m in dup.modules() if isinstance(m, torch.nn.Conv2d)
                and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    # the user's model: same weights bit for bit, same modules, standard layout
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [type(m) for m in model.modules()] == types
    assert all(p.is_contiguous() for p in model.parameters())
    # the copy predicts what the model predicts
    from mmattnvis.methods.drise_core import mmdet_predict
    sample, image = detected.samples[0], detected.inputs[0:1]
    with torch.no_grad():
        ours = mmdet_predict(model, sample)(image)[0]
        theirs = mmdet_predict(dup, sample)(image.contiguous(
            memory_format=torch.channels_last))[0]
    assert disagreement(theirs, ours, _targets(detected)) < 1e-4


def test_fast_maps_equal_the_models_and_hooks_do_not_fire(shapes):
    """Same masks, same seed: the maps with and without the copy agree; a hook on the user's
    model fires for every masked image only without the copy; predictions are unchanged."""
    model, detected = shapes
    calls = []
    handle = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    try:
        before = _state(model)
        fast = DRISE(num_masks=48, grid=8, progress=False, fast=True).explain(
            model, detected=detected)
        fast_calls, calls[:] = len(calls), []
        plain = DRISE(num_masks=48, grid=8, progress=False).explain(model, detected=detected)
        plain_calls = len(calls)
    finally:
        handle.remove()
    assert fast_calls == 0  # the check reads detect()'s predictions: no pass of the model
    assert plain_calls == 48 // 4
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hook_count(model) == 0
    for a, b in zip(fast.maps[0], plain.maps[0]):
        assert a.meta['fast'] is True and b.meta['fast'] is False
        assert np.abs(a.data - b.data).max() < 1e-3
        assert pearson(a.data, b.data) > 0.9999


def test_check_runs_the_model_once_when_the_sample_has_no_predictions(shapes):
    """A sample without ``pred_instances`` (the error explainer's targets): the check runs the
    model on the unmasked image once, and the copy passes it."""
    model, detected = shapes
    sample = detected.samples[0].clone()
    del sample.pred_instances
    calls = []
    handle = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    try:
        predict, info = FastPredictor(model, torch.device('cpu')).for_image(
            sample, detected.inputs[0:1], _targets(detected))
    finally:
        handle.remove()
    assert info == dict(fast=True) and len(calls) == 1


def test_auto_uses_the_copy_by_default_and_plain_drise_does_not(shapes):
    model, detected = shapes
    assert DRISE(num_masks='auto').fast and not DRISE(num_masks=100).fast
    assert not DRISE(num_masks='auto', fast=False).fast and DRISE(num_masks=10, fast=True).fast
    res = DRISE(num_masks='auto', grid=8, max_masks=200, progress=False).explain(
        model, detected=detected)
    assert all(m.meta['fast'] is True for m in res.maps[0])


def test_a_copy_that_predicts_differently_is_not_used(shapes, monkeypatch):
    """A wrong fold (here: a copy whose head is off) is caught by the check: the model runs the
    masked passes, the maps are plain D-RISE's bit for bit, and the log and the maps say why."""
    model, detected = shapes
    real = drise_fast.inference_copy

    def wrong(m, channels_last):
        dup = real(m, channels_last)
        with torch.no_grad():
            for conv in dup.bbox_head.head_module.convs_pred:
                conv.bias.add_(0.5)
        return dup

    monkeypatch.setattr(drise_fast, 'inference_copy', wrong)
    logged = []
    predictor = FastPredictor(model, torch.device('cpu'), logged.append)
    _, info = predictor.for_image(detected.samples[0], detected.inputs[0:1], _targets(detected))
    assert info['fast'] is False and 'predicts differently' in info['fast_reason']
    assert len(logged) == 1 and logged[0].startswith('D-RISE: running the model as it is')
    res = DRISE(num_masks=24, grid=8, progress=False, fast=True).explain(
        model, detected=detected)
    ref = DRISE(num_masks=24, grid=8, progress=False).explain(model, detected=detected)
    for a, b in zip(res.maps[0], ref.maps[0]):
        assert a.meta['fast'] is False and 'predicts differently' in a.meta['fast_reason']
        assert np.array_equal(a.data, b.data)


def test_a_model_that_cannot_be_copied_runs_as_it_is(shapes):
    model, detected = shapes
    odd = copy.deepcopy(model)
    odd.lock = threading.Lock()  # deepcopy cannot copy a lock
    logged = []
    predictor = FastPredictor(odd, torch.device('cpu'), logged.append)
    predict, info = predictor.for_image(detected.samples[0], detected.inputs[0:1],
                                        _targets(detected))
    assert info['fast'] is False and 'could not be copied' in info['fast_reason']
    assert 'lock' in info['fast_reason'] and len(logged) == 1
    assert len(predict(detected.inputs[0:1])) == 1
    predictor.for_image(detected.samples[0], detected.inputs[0:1], _targets(detected))
    assert len(logged) == 1  # said once per batch, not once per image


@pytest.mark.parametrize('flags, fast', [([], False), (['--drise-fast'], True),
                                         (['--drise-masks', 'auto', '--drise-max-masks', '100',
                                           '--no-drise-fast'], False)])
def test_cam_vis_fast_flags(flags, fast, tmp_path):
    """As a user types it: a number of masks runs the model (plain D-RISE), ``--drise-fast``
    the copy, ``--no-drise-fast`` turns it off for ``auto``; the records say which ran."""
    import cv2

    from mmattnvis.cli import cam_vis
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.sinks.records import load_record
    img = tmp_path / 'shapes.png'
    cv2.imwrite(str(img), make_shapes_image(np.random.default_rng(3))[0])
    args = [str(img), CONFIG, WEIGHTS, '--method', 'drise', '--drise-masks', '8',
            '--drise-grid', '4', '--topk', '1', '--device', 'cpu', '--out-dir',
            str(tmp_path / 'o'), '--save-results', str(tmp_path / 'R'), *flags]
    assert cam_vis.main(args) == 0
    [path] = [p for p in (tmp_path / 'R').rglob('*.json') if p.name != 'index.json']
    maps = list(load_record(str(path)).maps.values())
    assert maps and all(m.meta['fast'] is fast for m in maps)


def test_cam_vis_maps_on_the_copy_equal_the_models(tmp_path):
    """Through the CLI as a user types it, on a YOLOv5 (its copy post-processes only the kept
    priors): the same command with and without ``--drise-fast`` stores the same maps."""
    import cv2

    from mmattnvis.cli import cam_vis
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.sinks.records import load_record
    img = tmp_path / 'shapes.png'
    cv2.imwrite(str(img), make_shapes_image(np.random.default_rng(3))[0])
    maps = {}
    for run, flags in (('model', []), ('copy', ['--drise-fast'])):
        args = [str(img), CONFIG, WEIGHTS, '--method', 'drise', '--drise-masks', '24',
                '--drise-grid', '8', '--topk', '2', '--device', 'cpu', '--out-dir',
                str(tmp_path / run), '--save-results', str(tmp_path / f'R{run}'), *flags]
        assert cam_vis.main(args) == 0
        [path] = [p for p in (tmp_path / f'R{run}').rglob('*.json') if p.name != 'index.json']
        maps[run] = load_record(str(path)).maps
    assert maps['model'].keys() == maps['copy'].keys() and maps['model']
    for key, plain in maps['model'].items():
        fast = maps['copy'][key]
        assert fast.meta['fast'] is True and plain.meta['fast'] is False
        scale = float(np.abs(plain.data).max())
        assert scale > 0
        np.testing.assert_allclose(fast.data, plain.data, rtol=0, atol=1e-3 * scale)
