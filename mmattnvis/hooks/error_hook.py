"""``mmattnvis.ErrorHook``: TIDE's error labels (and a map per error) during ``runner.test()`` /
``runner.val()``.

Every batch is labelled from the runner's own outputs (no extra forward pass for the labels);
maps of errors are made for the first ``max_samples`` samples that have errors (``None``: all).
Every rank saves its records (:class:`~mmattnvis.apis.loop_results.LoopResults`, as the other
hooks); after the loop the main rank merges them into one index, builds the report, and from
the merged records logs TIDE's counts and dAP per kind (``mmattnvis/errors/...`` scalars) and
writes ``errors_summary.json`` and ``errors.html``. The work is all in
:class:`~mmattnvis.apis.errors.ErrorRun` (also ``ExplainHook(task='errors')``).
"""
import json
import os
import os.path as osp
from contextlib import nullcontext
from typing import Any, Optional

import torch
from mmengine.dist import is_main_process
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
from ..apis.loop_results import LoopResults, loop_dirs
from ..apis.options import OptionError
from ..apis.run import kept_model_state, sample_stem
from ..registry import HOOKS
from .fields import HookConfigError
from .meta import loop_dataset_meta, sink_info


@HOOKS.register_module()
class ErrorHook(Hook):
    """Error labels and maps of a val/test loop.

    Args:
        results_dir: Save the records here (relative: under ``work_dir``), per loop
            (``<results_dir>/<test|val>``; every rank's records merged into one index), with
            ``errors_summary.json``.
        report_dir: Build the HTML report of the records here, with ``errors.html`` (main
            rank; without it ``errors.html`` goes next to the records).
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
        self._results: Optional[LoopResults] = None
        self._mapped = 0
        self._mode = 'test'

    def _start(self, runner, mode: str) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._mode, self._mapped = mode, 0
        self._run = ErrorRun(model, self.options)
        self._run.dataset_meta = loop_dataset_meta(runner, mode)  # class names
        self._maps_run = self._run.explainer
        results, report, fallback = loop_dirs(runner.work_dir, mode, self.results_dir,
                                              self.report_dir, 'ErrorHook')
        # every loop labels the whole data set anew (TIDE's numbers need every sample)
        self._results = LoopResults('errors', results, report, fallback,
                                    sink_info(self, runner, mode), resume=False)

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
        # labels alone read the runner's outputs and never touch the model
        keep = kept_model_state(run.model) if (run.explainer is not None
                                               or self.options.reasons) else nullcontext()
        try:
            with keep, grad:
                records = run.run_batch(data_batch['inputs'], outputs)
        finally:
            run.explainer = self._maps_run
        for sample, record in zip(outputs, records):
            if any(k.startswith('error/') for k in record.maps):
                self._mapped += 1
            if self._results is not None:
                img_id = sample.metainfo.get('img_id', None)
                img_id = img_id.item() if hasattr(img_id, 'item') else img_id
                self._results.add(record, sample_stem(sample),
                                  None if img_id is None else [img_id])

    def after_test(self, runner) -> None:
        self._finish(runner)

    def after_val(self, runner) -> None:
        self._finish(runner)

    def _finish(self, runner) -> None:
        """Every rank: barrier; the main rank merges, reports and adds TIDE's numbers."""
        results, run = self._results, self._run
        self._results, self._run = None, None
        if results is None or run is None:
            return
        out = results.finish()
        if not is_main_process() or out['index'] is None:
            return
        index, records = results.merged()
        classes = run.classes
        summary = summarize_labels([r.info.get('errors', {}).get('image') for r in records],
                                   classes)
        summary['images'] = len(records)
        scalars = {f'mmattnvis/errors/{k}': v for k, v in flat_summary(summary).items()}
        runner.visualizer.add_scalars(scalars)
        runner.logger.info('mmattnvis errors (TIDE): AP50 %.2f; ' % summary['ap'] + ', '.join(
            f'{k} {summary["counts"][k]} (dAP {summary["dap"][k]:.2f})'
            for k in summary['counts']))
        tmp = osp.join(results.results_dir, '.errors_summary.json.tmp')
        with open(tmp, 'w') as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, osp.join(results.results_dir, 'errors_summary.json'))
        rows = [row for stem, r in zip(index['records'], records)
                for row in record_error_rows(stem, r, classes)]
        errors_page(results.report_dir or results.results_dir, summary, rows)


__all__ = ['ErrorHook']
