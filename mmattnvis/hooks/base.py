"""Base for visualisation hooks that capture tensors during ``runner.val()`` / ``test()`` /
``train()``.

In a standalone ``runner.val()`` / ``runner.test()`` the capture is attached once per loop, records
only on the iterations that are drawn (``interval``, ``max_samples``), is cleared after drawing, and
is removed when the loop ends -- or fails: the loop's ``run`` is wrapped on this runner's loop
instance (see :mod:`mmattnvis.apis.loop_guard`) so that an exception inside the loop still
detaches every hook.

Inside ``runner.train()`` the hook draws a fixed set of validation samples after every validation
(``fixed_samples``, every ``evolution_interval`` epochs), on the main rank only, with the epoch in
the file names and ``step=epoch`` for the vis backends; each drawing is kept as an evolution record
and an evolution figure (and GIF) per sample is written when training ends
(:mod:`mmattnvis.hooks.evolution`).

Output paths: a relative ``out_dir`` lies under ``runner.work_dir`` (as MMDet's ``--show-dir``);
files go to ``<out_dir>/<val|test>/<image>_<what>[_epoch<E>|_iter<I>].png``.
"""
import itertools
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, EpochBasedTrainLoop

from ..apis.loop_guard import LoopGuard
from ..apis.loop_results import LoopResults, loop_dirs
from ..apis.run import sample_stem
from ..structures import ResultRecord
from ..utils.cli import write_image_atomic
from .evolution import EvolutionStore
from .fields import HookConfigError, check_common_fields
from .meta import sink_info
from .training import TrainingDrawing


class CaptureVisHook(TrainingDrawing, Hook):
    """Shared lifecycle of mmattnvis visualisation hooks.

    The hook decides *when*; its task's ``Run`` (``apis/``) turns what the capture recorded into
    one result record per sample, exactly as the CLI does; :meth:`_draw_record` draws a record,
    and the drawings go to the runner visualizer's backends (and PNGs under ``out_dir``), the
    records to ``results_dir`` and an HTML report under ``report_dir``.

    Subclasses implement :meth:`_make_capture` (returns an object with ``attach``, ``remove``,
    ``enable``, ``clear``), :meth:`_validate`, :meth:`_records`, :meth:`_draw_record` and, for
    training-time evolution, :meth:`_evolution_rows`.

    Args:
        interval: Draw every ``interval``-th iteration (batch) of a val/test loop.
        max_samples: Stop drawing after this many samples per loop (``None``: no limit).
        draw_pred: Draw predictions on the images.
        draw_gt: Draw ground-truth boxes.
        score_thr: Score threshold of drawn predictions.
        out_dir: Also write PNGs here (``None``: only the runner visualizer's backends); a relative
            path lies under ``work_dir``.
        fixed_samples: During ``runner.train()``: the validation samples drawn after every
            validation -- a count (the first N of the val set), or a list of dataset indices and/or
            image file names. ``0`` turns training-time drawing off.
        evolution_interval: Draw the fixed samples every k-th validation epoch.
        evolution_cell: Width in pixels of a cell of the evolution figure.
        evolution_video: ``'gif'``, ``'mp4'`` (needs imageio-ffmpeg) or ``None``.
        results_dir: Save the result records here (relative: under ``work_dir``), one
            directory per loop (``<results_dir>/<val|test|train>``); ``None``: not saved.
        report_dir: Build the HTML report of each loop's records here (relative: under
            ``work_dir``) when the loop ends (for training: when training ends), main rank.
        resume: Keep the records an earlier (killed) run saved in ``results_dir`` and do not
            compute them again (hooks whose records need extra passes).

    In a distributed run every rank saves the records of the samples it drew; when the loop
    ends, the main rank merges them into one index (dataset order) and builds one report.
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 50,
                 max_samples: Optional[int] = None,
                 draw_pred: bool = True,
                 draw_gt: bool = False,
                 score_thr: float = 0.3,
                 out_dir: Optional[str] = None,
                 fixed_samples: Union[int, Sequence[Union[int, str]]] = 4,
                 evolution_interval: int = 1,
                 evolution_cell: int = 224,
                 evolution_video: Optional[str] = 'gif',
                 results_dir: Optional[str] = None,
                 report_dir: Optional[str] = None,
                 resume: bool = False) -> None:
        self.interval = interval
        self.max_samples = max_samples
        self.draw_pred = draw_pred
        self.draw_gt = draw_gt
        self.score_thr = score_thr
        self.out_dir = out_dir
        self.fixed_samples = fixed_samples
        self.evolution_interval = evolution_interval
        self.evolution_cell = evolution_cell
        self.evolution_video = evolution_video
        self.results_dir = results_dir
        self.report_dir = report_dir
        self.resume = resume
        self._results: Optional[LoopResults] = None
        self._batch_plan: Optional[List[List[int]]] = None
        self._batch_indices: List[int] = []
        self._capture: Any = None
        self._selected = False
        self._drawn = 0
        self._batch_step = 0
        self._loop_guard = LoopGuard()
        self._mode = 'test'
        self._fixed_indices: Optional[List[int]] = None
        self._store: Optional[EvolutionStore] = None

    # -- configuration -----------------------------------------------------------------------
    def _fail(self, field: str, problem: str) -> None:
        raise HookConfigError(f'{type(self).__name__}.{field}: {problem}')

    def _validate(self, model) -> None:
        check_common_fields(self)

    def _make_capture(self, model):
        raise NotImplementedError

    def _records(self, runner, outputs: Sequence[Any]) -> List[ResultRecord]:
        """One result record per sample of a drawn batch, from what the capture recorded."""
        raise NotImplementedError

    def _draw_record(self, runner, image_rgb: np.ndarray, record: ResultRecord,
                     tag: str) -> List[tuple]:
        """Return ``[(name, rgb_image), ...]`` for one record (``tag`` names the sample)."""
        raise NotImplementedError

    def _task(self) -> str:
        raise NotImplementedError

    def _evolution_rows(self, runner, image_rgb: np.ndarray, sample, index: int,
                        gt: Dict[str, np.ndarray], drawings: List[tuple]) -> Dict[str, Any]:
        """Rows of the evolution figure of a fixed sample at this epoch (``drawings``: its
        :meth:`_draw_record` output).

        Returns:
            ``{'rows': [(row_key, label, rgb_cell)], 'scalars': {name: value}, 'meta': {...}}``.
        """
        return {'rows': [], 'scalars': {}, 'meta': {}}

    # -- lifecycle ---------------------------------------------------------------------------
    @staticmethod
    def _unwrap(model):
        return model.module if is_model_wrapper(model) else model

    def before_run(self, runner) -> None:
        self._validate(self._unwrap(runner.model))
        self._loop_guard.guard(runner, self._on_loop_error)

    def _on_loop_error(self) -> None:
        self._detach()
        self._unwrap_loops()

    def _unwrap_loops(self) -> None:
        self._loop_guard.release()

    def after_run(self, runner) -> None:
        self._detach()
        self._unwrap_loops()
        self._results = None  # finished by after_test / after_val / after_train

    def _attach(self, runner, mode: str) -> None:
        self._detach()
        self._mode = mode
        self._drawn = 0
        self._batch_step = 0
        if not self._training(runner):
            self._batch_plan = _batch_plan(getattr(runner, f'{mode}_loop'))
            self._open_results(runner, mode)
        self._capture = self._make_capture(self._unwrap(runner.model))
        self._capture.attach()
        self._capture.enable(False)

    def _detach(self) -> None:
        if self._capture is not None:
            self._capture.clear()
            self._capture.remove()
        self._capture = None
        self._selected = False

    def before_val(self, runner) -> None:
        self._attach(runner, 'val')

    def before_test(self, runner) -> None:
        self._attach(runner, 'test')

    def after_val(self, runner) -> None:
        self._detach()
        if not self._training(runner):
            self._close_results(runner)

    def after_test(self, runner) -> None:
        self._detach()
        self._close_results(runner)

    # -- saved records and the report (every rank writes, the main rank merges) -------------
    def _open_results(self, runner, mode: str) -> None:
        """Open the loop's results on every rank (all ranks call this together)."""
        self._results = None
        if self.results_dir is None and self.report_dir is None:
            return
        results, report, fallback = loop_dirs(runner.work_dir, mode, self.results_dir,
                                              self.report_dir, type(self).__name__)
        self._results = LoopResults(self._task(), results, report, fallback,
                                    sink_info(self, runner, mode),
                                    resume=self.resume)

    def _summarize(self, records: Sequence[ResultRecord]) -> Dict[str, float]:
        """Dataset-level numbers of the merged records (logged as scalars)."""
        return {}

    def _close_results(self, runner) -> None:
        """Every rank: barrier; the main rank merges, reports and logs the summary."""
        results, self._results = self._results, None
        if results is None:
            return
        out = results.finish(self._summarize)
        if out['summary']:
            scalars = {f'mmattnvis/{self._task()}/{k}': float(v)
                       for k, v in out['summary'].items() if v is not None}
            runner.visualizer.add_scalars(scalars, step=self._step(runner))
            runner.logger.info('mmattnvis ' + ', '.join(f'{k}: {v:.4f}'
                                                        for k, v in scalars.items()))

    # -- where a loop runs -------------------------------------------------------------------
    @staticmethod
    def _training(runner) -> bool:
        """Inside ``runner.train()`` (its loop exists). Never builds the train loop: reading
        ``runner.iter`` / ``runner.epoch`` outside training would build it and its dataloader."""
        return isinstance(getattr(runner, '_train_loop', None), BaseLoop)

    def _step(self, runner) -> int:
        """The vis-backend step: the epoch (or iteration) of training, else the drawn batch."""
        if self._training(runner):
            return runner.epoch if isinstance(runner.train_loop, EpochBasedTrainLoop) \
                else runner.iter
        return self._batch_step

    def _suffix(self, runner) -> str:
        if not self._training(runner):
            return ''
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            return f'_epoch{runner.epoch}'
        return f'_iter{runner.iter}'

    # -- val / test loops --------------------------------------------------------------------
    def _select_batch(self, runner, batch_idx: int) -> None:
        plan = self._batch_plan
        self._batch_indices = list(plan[batch_idx]) if plan and batch_idx < len(plan) else []
        if self._capture is None:
            return
        if self._training(runner):
            self._selected = False  # in training, the fixed samples are drawn instead
        else:
            room = self.max_samples is None or self._drawn < self.max_samples
            self._selected = room and batch_idx % self.interval == 0
        self._capture.enable(self._selected)

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._select_batch(runner, batch_idx)

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._select_batch(runner, batch_idx)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._draw_batch(runner, outputs)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._draw_batch(runner, outputs)

    def _draw_batch(self, runner, outputs: Optional[Sequence[Any]]) -> None:
        if self._capture is None or not self._selected:
            return
        try:
            step = self._step(runner)
            records = self._records(runner, outputs or [])
            for i, (sample, record) in enumerate(zip(outputs or [], records)):
                if self.max_samples is not None and self._drawn >= self.max_samples:
                    break
                self._emit_record(runner, record, sample, self._load_image(sample), step,
                                  order=self._order(i))
                self._drawn += 1
            self._batch_step += 1
        finally:
            # Drawn tensors are released at once; memory stays flat over the loop.
            self._capture.clear()
            self._capture.enable(False)
            self._selected = False

    def _order(self, i: int) -> Optional[List[int]]:
        """Where sample ``i`` of the current batch sits in the dataset (the index's order)."""
        return [self._batch_indices[i]] if i < len(self._batch_indices) else None

    def _emit_record(self, runner, record: ResultRecord, sample, image: Optional[np.ndarray],
                     step: int, order: Optional[Sequence[int]] = None) -> List[tuple]:
        """Draw a record, send the drawings out, save the record; returns the drawings."""
        tag = self._sample_tag(runner, sample)
        drawings = [] if image is None else self._draw_record(runner, image, record, tag)
        self._emit(runner, drawings, step)
        if self._results is not None:
            stem = sample_stem(sample) + self._suffix(runner)
            record.info.update(step=step, tag=stem)
            self._results.add(record, stem, order)
        return drawings

    def _emit(self, runner, drawings: Sequence[tuple], step: int) -> None:
        suffix = self._suffix(runner)
        for name, drawn in drawings:
            runner.visualizer.add_image(name, drawn, step=step)
            if self.out_dir:
                write_image_atomic(self._out_file(runner, f'{name}{suffix}'), drawn)

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _load_image(sample) -> np.ndarray:
        path = sample.metainfo.get('img_path')
        if path is None:
            raise HookConfigError('cannot draw: the data sample has no img_path')
        img = mmcv.imread(path, channel_order='rgb')
        if img is None:
            raise HookConfigError(f'cannot draw: cannot read {path}')
        return img

    def _sample_tag(self, runner, sample) -> str:
        stem = osp.splitext(osp.basename(sample.metainfo.get('img_path', 'image')))[0]
        img_id = sample.metainfo.get('img_id', None)
        tag = f'{stem}' if img_id is None else f'{stem}_id{img_id}'
        if getattr(runner, 'world_size', 1) > 1 and not self._training(runner):
            tag += f'_rank{runner.rank}'
        return tag

    def _out_root(self, runner) -> str:
        """``out_dir`` (relative: under ``work_dir``); ``mmattnvis`` when none is set, for the
        evolution records that training keeps."""
        out_dir = self.out_dir or 'mmattnvis'
        return out_dir if osp.isabs(out_dir) else osp.join(runner.work_dir, out_dir)

    def _out_file(self, runner, name: str) -> str:
        return osp.join(self._out_root(runner), self._mode, f'{name}.png')


def _batch_plan(loop) -> Optional[List[List[int]]]:
    """The dataset indices of every batch the loop's dataloader gives on this rank (its batch
    sampler iterated once more: deterministic for MMEngine's samplers); ``None`` if unknown."""
    loader = getattr(loop, 'dataloader', None)
    batch_sampler = getattr(loader, 'batch_sampler', None)
    if batch_sampler is None:
        return None
    try:
        return [list(b) for b in itertools.islice(iter(batch_sampler),
                                                  len(loader))]  # type: ignore[arg-type]
    except TypeError:  # no length (an infinite sampler)
        return None
