"""``mmattnvis.ErrorHook``: TIDE's error labels (and a map per error) during ``runner.test()`` /
``runner.val()``.

Every batch is labelled from the runner's own outputs (no extra forward pass for the labels);
maps of errors are made for the first ``max_samples`` samples that have errors (``None``: all).
After the loop the labels of every rank are gathered and the main rank logs TIDE's counts and
dAP per kind (``mmattnvis/errors/...`` scalars), writes ``errors_summary.json`` and, with
``results_dir`` / ``report_dir``, the records and the report.

A stop-gap shell until ``ExplainHook(task='errors')`` of the runner issue lands: the work is all
in :class:`~mmattnvis.apis.errors.ErrorRun`.
"""
import json
import os
import os.path as osp
from typing import Any, List, Optional

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..apis.errors import (
    ErrorOptions,
    ErrorRun,
    errors_page,
    flat_summary,
    record_error_rows,
    summarize_labels,
)
from ..apis.options import OptionError
from ..apis.run_sinks import RunSinks
from ..registry import HOOKS
from .fields import HookConfigError
from .meta import loop_dataset_meta


@HOOKS.register_module()
class ErrorHook(Hook):
    """Error labels and maps of a val/test loop.

    Args:
        results_dir: Save the records here (relative: under ``work_dir``), per loop
            (``<results_dir>/<test|val>``; with several ranks ``.../rank<r>``).
        report_dir: Build the HTML report of the records here (main rank).
        max_samples: Samples whose errors get maps (``None``: every sample).
        **fields: :class:`~mmattnvis.apis.errors.ErrorOptions` fields (``score_thr``,
            ``method``, ``drise_masks``, ``max_maps``, ``reasons``...).
    """

    priority = 'NORMAL'
    #: ``**fields`` are :class:`ErrorOptions`, checked in ``__init__`` (one-line errors).
    kwargs_checked_by_hook = True

    def __init__(self, results_dir: Optional[str] = 'errors', report_dir: Optional[str] = None,
                 max_samples: Optional[int] = None, **fields: Any) -> None:
        try:
            self.options = ErrorOptions.from_fields(**fields)
            self.options.validate()
        except OptionError as err:
            raise HookConfigError(f'ErrorHook.{err}') from None
        self.results_dir = results_dir
        self.report_dir = report_dir
        self.max_samples = max_samples
        self._run: Optional[ErrorRun] = None
        self._labels: List[Any] = []
        self._rows: List[dict] = []
        self._sinks: Optional[RunSinks] = None
        self._mapped = 0
        self._mode = 'test'

    def _start(self, runner, mode: str) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._mode, self._labels, self._mapped, self._rows = mode, [], 0, []
        self._run = ErrorRun(model, self.options)
        self._run.dataset_meta = loop_dataset_meta(runner, mode)  # class names
        self._maps_run = self._run.explainer
        dirs = [None if d is None else osp.join(d if osp.isabs(d) else
                                                osp.join(runner.work_dir, d), mode)
                for d in (self.results_dir, self.report_dir)]
        if get_world_size() > 1 and dirs[0] is not None:
            dirs[0] = osp.join(dirs[0], f'rank{get_rank()}')
        self._dirs = dirs
        report = dirs[1] if is_main_process() and get_world_size() == 1 else None
        self._sinks = RunSinks('errors', dirs[0], report, {'hook': 'ErrorHook', 'mode': mode})

    def before_test(self, runner) -> None:
        self._start(runner, 'test')

    def before_val(self, runner) -> None:
        self._start(runner, 'val')

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._batch(runner, data_batch, outputs)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._batch(runner, data_batch, outputs)

    def _batch(self, runner, data_batch, outputs) -> None:
        run = self._run
        if run is None or not outputs:
            return
        room = self.max_samples is None or self._mapped < self.max_samples
        run.explainer = self._maps_run if room else None
        grad = torch.enable_grad() if run.needs_grad and room else torch.no_grad()
        with grad:
            records = run.run_batch(data_batch['inputs'], outputs)
        run.explainer = self._maps_run
        for record in records:
            if any(k.startswith('error/') for k in record.maps):
                self._mapped += 1
            self._labels.append(record.info.get('errors', {}).get('image'))
        for sample, record in zip(outputs, records):
            self._rows += record_error_rows(_stem(sample), record, run.classes)
            if self._sinks is not None:
                self._sinks.add(record, _stem(sample))

    def after_test(self, runner) -> None:
        self._finish(runner)

    def after_val(self, runner) -> None:
        self._finish(runner)

    def _finish(self, runner) -> None:
        if self._run is None:
            return
        labels = [x for part in all_gather_object(self._labels) for x in part if x]
        rows = [x for part in all_gather_object(self._rows) for x in part]
        summary = None
        if is_main_process():
            classes = self._run.classes
            summary = summarize_labels(labels, classes)
            summary['images'] = len(labels)
            scalars = {f'mmattnvis/errors/{k}': v for k, v in flat_summary(summary).items()}
            runner.visualizer.add_scalars(scalars)
            runner.logger.info('mmattnvis errors (TIDE): AP50 %.2f; ' % summary['ap'] + ', '.join(
                f'{k} {summary["counts"][k]} (dAP {summary["dap"][k]:.2f})'
                for k in summary['counts']))
            out = self._dirs[0]
            if out is not None and get_world_size() > 1:
                out = osp.dirname(out)  # above the per-rank record folders
            out = out or osp.join(runner.work_dir, 'errors', self._mode)
            os.makedirs(out, exist_ok=True)
            tmp = osp.join(out, '.errors_summary.json.tmp')
            with open(tmp, 'w') as f:
                json.dump(summary, f, indent=1)
            os.replace(tmp, osp.join(out, 'errors_summary.json'))
            page_dir = self._dirs[1] or out
        if self._sinks is not None:
            if summary is not None:
                self._sinks.update_info(errors_summary=summary)
            self._sinks.close()
        if summary is not None:  # after the report is built: it replaces its directory
            errors_page(page_dir, summary, rows)
        self._sinks, self._run = None, None


def _stem(sample) -> str:
    meta = sample.metainfo
    stem = osp.splitext(osp.basename(str(meta.get('img_path') or 'image')))[0]
    img_id = meta.get('img_id', None)
    img_id = img_id.item() if hasattr(img_id, 'item') else img_id
    return stem if img_id is None else f'{stem}_id{img_id}'


__all__ = ['ErrorHook']
