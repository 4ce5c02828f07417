"""``ExplainHook`` inside ``runner.test()``: predictions and model state unchanged, nothing left
on the model (also when the explainer fails), resume, bad fields, dataset-level scalars."""
import json
import os

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmattnvis.sinks import load_results
from mmattnvis.utils.package_data import shipped_model

from conftest import hook_count
from runner_utils import make_dataset, runner_cfg


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp('shapes'), num_images=6, seed=13)


class Preds(Hook):
    """Collects every prediction of the test loop."""
    priority = 'LOWEST'

    def __init__(self):
        self.preds = []

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for s in outputs:
            p = s.pred_instances
            self.preds.append((p.bboxes.clone(), p.scores.clone(), p.labels.clone()))


def _runner(data, work, hooks, batch_size=1):
    config, weights = shipped_model('yolov5_n_shapes')
    cfg = runner_cfg(config, *data, work, custom_hooks=hooks, batch_size=batch_size, scale=160)
    cfg.load_from = weights
    return Runner.from_cfg(cfg)


def _model(runner):
    return runner.model.module if hasattr(runner.model, 'module') else runner.model


def _hook(runner):
    return [h for h in runner.hooks if type(h).__name__ == 'ExplainHook'][0]


CAM = dict(type='mmattnvis.ExplainHook', task='cam', method=['gradcam'],
           target_layers=['neck'], topk=2, interval=1, out_dir='png', results_dir='res')


def test_predictions_and_model_state_unchanged(data, tmp_path):
    plain = _runner(data, tmp_path / 'a', [], batch_size=2)
    probe_a = Preds()
    plain.register_hook(probe_a, 'LOWEST')
    metrics_a = plain.test()
    hooked = _runner(data, tmp_path / 'b', [CAM], batch_size=2)
    probe_b = Preds()
    hooked.register_hook(probe_b, 'LOWEST')
    model = _model(hooked)
    flags = [p.requires_grad for p in model.parameters()]
    metrics_b = hooked.test()
    assert metrics_a == metrics_b
    assert len(probe_a.preds) == len(probe_b.preds) == 6
    for a, b in zip(probe_a.preds, probe_b.preds):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert hook_count(model) == 0
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    state = _model(plain).state_dict()  # the same checkpoint, loaded by the runner
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # the explainer ran: a figure and a record with maps per drawn image
    _, records = load_results(str(tmp_path / 'b' / 'res' / 'test'))
    assert len(records) == 6 and sum(len(r.maps) > 0 for r in records) >= 4
    assert len(os.listdir(tmp_path / 'b' / 'png' / 'test')) == 6


def test_drise_on_the_inference_copy_inside_the_runner(data, tmp_path):
    """``drise_fast=True`` in the hook: the masked passes run on the folded copy (the records
    say so), the test loop's predictions and the model's weights are those of a plain run, and
    nothing is left on the model."""
    plain = _runner(data, tmp_path / 'a', [])
    probe_a = Preds()
    plain.register_hook(probe_a, 'LOWEST')
    metrics_a = plain.test()
    hook = dict(type='mmattnvis.ExplainHook', task='drise', drise_masks=8, drise_grid=4,
                drise_fast=True, topk=1, interval=1, draw=False, results_dir='res')
    hooked = _runner(data, tmp_path / 'b', [hook])
    probe_b = Preds()
    hooked.register_hook(probe_b, 'LOWEST')
    metrics_b = hooked.test()
    assert metrics_a == metrics_b
    for a, b in zip(probe_a.preds, probe_b.preds):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    model = _model(hooked)
    assert hook_count(model) == 0 and not model.training
    assert all(p.is_contiguous() for p in model.parameters())
    state = _model(plain).state_dict()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    _, records = load_results(str(tmp_path / 'b' / 'res' / 'test'))
    maps = [m for r in records for m in r.maps.values()]
    assert len(records) == 6 and maps
    assert all(m.meta['fast'] is True and m.meta['num_masks'] == 8 for m in maps)


class RaiseInGradPass:
    """A forward hook that fails only inside the explainer's gradient pass."""

    def __call__(self, module, args, output):
        if torch.is_grad_enabled():
            raise RuntimeError('explainer failed')


def test_everything_removed_when_the_explainer_fails(data, tmp_path):
    runner = _runner(data, tmp_path, [CAM])
    model = _model(runner)
    flags = [p.requires_grad for p in model.parameters()]
    handle = model.neck.register_forward_hook(RaiseInGradPass())
    with pytest.raises(RuntimeError, match='explainer failed'):
        runner.test()
    handle.remove()
    assert hook_count(model) == 0  # the CAM's own capture hooks are gone too
    assert [p.requires_grad for p in model.parameters()] == flags
    assert 'run' not in runner.test_loop.__dict__


def test_resume_skips_saved_records(data, tmp_path):
    hook = dict(type='mmattnvis.ExplainHook', task='drise', drise_masks=8, drise_grid=4,
                drise_batch=8, topk=1, interval=1, draw=False, results_dir='res')
    first = _runner(data, tmp_path, [dict(hook, max_samples=3)])
    first.test()
    assert _hook(first).computed == 3
    res = tmp_path / 'res' / 'test'
    index, _ = load_results(str(res))
    done = {s: os.stat(res / 'records' / f'{s}.npz').st_mtime_ns for s in index['records']}
    assert len(done) == 3
    # a run killed while writing a line: that line's record is not trusted
    with open(res / 'parts' / 'rank0.jsonl', 'a') as f:
        f.write('{"stem": "cut')
    again = _runner(data, tmp_path, [hook])
    again.test()
    h = _hook(again)
    assert (h.computed, h.reused) == (3, 3)  # only the samples without records
    index, records = load_results(str(res))
    assert len(index['records']) == 6 and len(set(index['records'])) == 6
    assert {s: os.stat(res / 'records' / f'{s}.npz').st_mtime_ns for s in done} == done
    # without resume every sample is computed again
    fresh = _runner(data, tmp_path, [dict(hook, resume=False)])
    fresh.test()
    assert _hook(fresh).computed == 6


@pytest.mark.parametrize('fields, message', [
    (dict(task='nope'), "ExplainHook.task: unknown task 'nope'"),
    (dict(task='cam', method=['gradcamz']), 'ExplainHook.'),
    (dict(task='drise', drise_masks=0), 'ExplainHook.'),
    (dict(task='cam', target_layers=['neck.nope']), 'ExplainHook.target_layers:'),
    (dict(task='cam', bogus=1), "ExplainHook.bogus: unknown field 'bogus'"),
])
def test_bad_fields_fail_before_any_data(fields, message, data, tmp_path):
    runner = _runner(data, tmp_path, [dict(type='mmattnvis.ExplainHook', **fields)])
    probe = Preds()
    runner.register_hook(probe, 'LOWEST')
    with pytest.raises(ValueError) as err:
        runner.test()
    assert message in str(err.value) and '\n' not in str(err.value)
    assert probe.preds == []


def test_faithfulness_numbers_logged_as_scalars(data, tmp_path):
    hook = dict(type='mmattnvis.ExplainHook', task='faithfulness', method=['gradcam'],
                target_layers=['neck'], topk=1, steps=3, no_insertion=True, interval=1,
                max_samples=2, results_dir='res', report_dir='rep')
    runner = _runner(data, tmp_path, [hook])
    runner.test()
    index, records = load_results(str(tmp_path / 'res' / 'test'))
    summary = index['info']['summary']
    rows = [row for r in records for row in r.info['rows']]
    grad = [r for r in rows if r['method'] == 'gradcam']
    assert grad and abs(summary['gradcam/deletion_auc'] - sum(
        r['deletion_auc'] for r in grad) / len(grad)) < 1e-9
    assert any(r['pointing_game_gt'] is not None for r in grad)  # the dataset's ground truth
    scalars = [json.loads(line) for d, _, names in os.walk(tmp_path) for n in names
               if n == 'scalars.json' for line in open(os.path.join(d, n))]
    assert any('mmattnvis/faithfulness/gradcam/deletion_auc' in s for s in scalars)
