"""``ExplainHook``: any task's Run on the runner's own val/test batches (CAM, ODAM, D-RISE,
relevance, head ablation, faithfulness, ... every task of :data:`~mmattnvis.registry.RUNS`)."""
import contextlib
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..apis.options import OptionError
from ..apis.run import kept_model_state, sample_stem
from ..apis.tasks import build_run, task_figure
from ..registry import HOOKS
from ..structures import ResultRecord
from ..utils.errors import UserInputError
from .base import CaptureVisHook
from .meta import loop_dataset_meta


class _NoCapture:
    """The Runs make their own passes: nothing is captured from the runner's forward."""

    def attach(self) -> None:
        pass

    def remove(self) -> None:
        pass

    def enable(self, on: bool) -> None:
        pass

    def clear(self) -> None:
        pass


@HOOKS.register_module()
class ExplainHook(CaptureVisHook):
    """Run a task on every selected val/test batch, with the runner's model and data.

    Example::

        custom_hooks = [dict(type='mmattnvis.ExplainHook', task='drise', drise_masks=500,
                             interval=1, results_dir='explain', report_dir='report')]

    After each selected iteration the task's Run (``apis/``, the one its CLI uses) gets the same
    ``data_batch`` the model just predicted on, makes its own passes (gradients, masks,
    perturbations; under ``torch.enable_grad()`` where it needs them) and returns one record per
    sample; the model's mode, ``requires_grad`` flags and gradients are as before. Records are
    drawn (when the task has a figure) to the runner visualizer's backends and ``out_dir``,
    saved under ``results_dir`` by every rank and merged by the main rank, which builds the
    report and logs the task's dataset-level numbers (faithfulness: per-method means) as
    scalars ``mmattnvis/<task>/<name>``. With ``resume`` (default) a restarted run skips the
    samples whose records ``results_dir`` already holds. Draws nothing during ``train()``.

    Args:
        task: ``cam``, ``odam``, ``drise``, ``occlusion``, ``relevance``, ``ablation``,
            ``faithfulness``, ``featmap``, ``attention`` (or any task registered in ``RUNS``).
        draw: Draw figures (``False``: records only).
        cell_width: Width of a figure cell.
        **fields: The task's options by their CLI names (``method``, ``target_layers``,
            ``topk``, ``score_thr``, ``drise_masks``, ``drise_grid``, ``occlusion_grid``, ``seed``,
            ``steps``, ``part``, ...) and the shared hook fields (``interval``, ``max_samples``,
            ``out_dir``, ``results_dir``, ``report_dir``, ``resume``).
    """

    #: ``**fields`` are the task's options, checked by the task (one-line errors in before_run).
    kwargs_checked_by_hook = True
    _HOOK_FIELDS = ('interval', 'max_samples', 'draw_pred', 'draw_gt', 'out_dir',
                    'results_dir', 'report_dir', 'resume')

    def __init__(self, task: str = 'cam', draw: bool = True, cell_width: int = 320,
                 interval: int = 1, resume: bool = True, **fields: Any) -> None:
        hook_fields = {k: fields.pop(k) for k in list(fields) if k in self._HOOK_FIELDS}
        if 'score_thr' in fields:
            hook_fields['score_thr'] = fields['score_thr']
        super().__init__(interval=interval, resume=resume, fixed_samples=0, **hook_fields)
        self.task = task
        self.draw = draw
        self.cell_width = cell_width
        self.fields = fields
        self._run: Any = None
        self.computed = 0  # samples whose records this hook computed (resume skips the rest)
        self.reused = 0

    def _task(self) -> str:
        return self._run.task if self._run is not None else str(self.task)

    def _validate(self, model) -> None:
        super()._validate(model)
        cfg = getattr(self, '_runner_cfg', None)
        try:
            self._run = build_run(self.task, model, cfg=cfg, **self.fields)
        except OptionError as err:
            self._fail(err.field, str(err))
        except UserInputError as err:
            self._fail('task', str(err))

    def before_run(self, runner) -> None:
        self._runner_cfg = runner.cfg
        super().before_run(runner)

    def _make_capture(self, model) -> _NoCapture:
        return _NoCapture()

    def _summarize(self, records: Sequence[ResultRecord]) -> Dict[str, float]:
        return type(self._run).summarize(records) if self._run is not None else {}

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._explain_batch(runner, data_batch)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._explain_batch(runner, data_batch)

    def _explain_batch(self, runner, data_batch: Optional[dict]) -> None:
        if not self._selected or data_batch is None:
            return
        self._selected = False
        samples = list(data_batch['data_samples'])
        todo: List[int] = []
        for i, sample in enumerate(samples):
            if self.max_samples is not None and self._drawn + len(todo) >= self.max_samples:
                break
            if self._results is not None and self._results.has(sample_stem(sample)):
                self.reused += 1
                continue
            todo.append(i)
        self._drawn += len(todo)
        if not todo:
            return
        inputs = [data_batch['inputs'][i] for i in todo]
        batch = [_clean(samples[i]) for i in todo]
        model = self._unwrap(runner.model)
        self._run.dataset_meta = loop_dataset_meta(runner, self._mode)  # class names
        grad = torch.enable_grad() if self._run.needs_grad else contextlib.nullcontext()
        with kept_model_state(model), grad:
            records = self._run.run_batch(inputs, batch)
        self.computed += len(records)
        step = self._step(runner)
        for i, sample, record in zip(todo, batch, records):
            image = self._load_image(sample) if self._draws() else None
            self._emit_record(runner, record, sample, image, step, order=self._order(i))
        self._batch_step += 1

    def _draws(self) -> bool:
        return self.draw and task_figure(self._task()) is not None

    def _draw_record(self, runner, image_rgb: np.ndarray, record: ResultRecord,
                     tag: str) -> List[tuple]:
        figure = task_figure(self._task())
        if figure is None:
            return []
        meta = loop_dataset_meta(runner, self._mode)
        return figure(record, image_rgb, self._run.options, tag, meta=meta,
                      cell_width=self.cell_width)


def _clean(sample):
    """A copy of a data sample without the runner's predictions (the Run makes its own)."""
    sample = sample.clone()
    if 'pred_instances' in sample:
        del sample.pred_instances
    return sample
