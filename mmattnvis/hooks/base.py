"""Base for visualisation hooks that capture tensors during ``runner.val()`` / ``test()`` /
``train()``.

In a standalone ``runner.val()`` / ``runner.test()`` the capture is attached once per loop, records
only on the iterations that are drawn (``interval``, ``max_samples``), is cleared after drawing, and
is removed when the loop ends -- or fails: the loop's ``run`` is wrapped on this runner's loop
instance (see :mod:`mmattnvis.compat.mmengine_loop`) so that an exception inside the loop still
detaches every hook.

Inside ``runner.train()`` the hook draws a fixed set of validation samples after every validation
(``fixed_samples``, every ``evolution_interval`` epochs), on the main rank only, with the epoch in
the file names and ``step=epoch`` for the vis backends; each drawing is kept as an evolution record
and an evolution figure (and GIF) per sample is written when training ends
(:mod:`mmattnvis.hooks.evolution`).

Output paths: a relative ``out_dir`` lies under ``runner.work_dir`` (as MMDet's ``--show-dir``);
files go to ``<out_dir>/<val|test>/<image>_<what>[_epoch<E>|_iter<I>].png``.
"""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, EpochBasedTrainLoop

from ..apis.run_sinks import RunSinks
from ..compat.mmengine_loop import unwrap_loop_run, wrap_loop_run
from ..structures import ResultRecord
from ..utils.cli import write_image_atomic
from .evolution import EvolutionStore, evolution_name, resolve_fixed_samples
from .fields import check_common_fields


class HookConfigError(ValueError):
    """A bad hook argument; the message names the hook and the field."""


class CaptureVisHook(Hook):
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
                 report_dir: Optional[str] = None) -> None:
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
        self._sinks: Optional[RunSinks] = None
        self._capture: Any = None
        self._selected = False
        self._drawn = 0
        self._batch_step = 0
        self._wrapped_loops: List[BaseLoop] = []
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
        for attr in ('_test_loop', '_val_loop'):
            loop = getattr(runner, attr, None)
            if isinstance(loop, BaseLoop) and loop not in self._wrapped_loops:
                wrap_loop_run(loop, self._on_loop_error)
                self._wrapped_loops.append(loop)

    def _on_loop_error(self) -> None:
        self._detach()
        self._unwrap_loops()

    def _unwrap_loops(self) -> None:
        for loop in self._wrapped_loops:
            unwrap_loop_run(loop)
        self._wrapped_loops = []

    def after_run(self, runner) -> None:
        self._detach()
        self._unwrap_loops()
        self._close_sinks()

    def _attach(self, runner, mode: str) -> None:
        self._detach()
        self._mode = mode
        self._drawn = 0
        self._batch_step = 0
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
            self._close_sinks()

    def after_test(self, runner) -> None:
        self._detach()
        self._close_sinks()

    # -- saved records and the report -------------------------------------------------------
    def _sink(self, runner) -> Optional[RunSinks]:
        if (self.results_dir is None and self.report_dir is None) or not is_main_process():
            return None  # the main rank writes results and the report
        if self._sinks is None:
            mode = 'train' if self._training(runner) else self._mode
            dirs = [None if d is None else osp.join(
                d if osp.isabs(d) else osp.join(runner.work_dir, d), mode)
                for d in (self.results_dir, self.report_dir)]
            self._sinks = RunSinks(self._task(), dirs[0], dirs[1],
                                   {'hook': type(self).__name__, 'mode': mode})
        return self._sinks

    def _close_sinks(self) -> None:
        sinks, self._sinks = self._sinks, None
        if sinks is not None:
            sinks.close()

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
            for sample, record in zip(outputs or [], records):
                if self.max_samples is not None and self._drawn >= self.max_samples:
                    break
                self._emit_record(runner, record, sample, self._load_image(sample), step)
                self._drawn += 1
            self._batch_step += 1
        finally:
            # Drawn tensors are released at once; memory stays flat over the loop.
            self._capture.clear()
            self._capture.enable(False)
            self._selected = False

    def _emit_record(self, runner, record: ResultRecord, sample, image: np.ndarray,
                     step: int) -> List[tuple]:
        """Draw a record, send the drawings out, save the record; returns the drawings."""
        tag = self._sample_tag(runner, sample)
        drawings = self._draw_record(runner, image, record, tag)
        self._emit(runner, drawings, step)
        sinks = self._sink(runner)
        if sinks is not None:
            record.info.update(step=step, tag=tag)
            sinks.add(record, tag + self._suffix(runner))
        return drawings

    def _emit(self, runner, drawings: Sequence[tuple], step: int) -> None:
        suffix = self._suffix(runner)
        for name, drawn in drawings:
            runner.visualizer.add_image(name, drawn, step=step)
            if self.out_dir:
                write_image_atomic(self._out_file(runner, f'{name}{suffix}'), drawn)

    # -- training: fixed samples after every validation --------------------------------------
    def before_train(self, runner) -> None:
        self._store = EvolutionStore(self._out_root(runner), type(self).__name__)
        if is_main_process():
            # A fresh run starts a new evolution; a resumed one keeps the epochs it has done.
            self._store.drop_after(runner.epoch)

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if not self._training(runner) or self._capture is None or self._store is None:
            return
        if self.fixed_samples == 0 or self._step(runner) % self.evolution_interval:
            return
        if not is_main_process():
            return  # the main rank draws; the fixed samples are the same on every rank
        dataset = runner.val_loop.dataloader.dataset
        if self._fixed_indices is None:
            self._fixed_indices = resolve_fixed_samples(dataset, self.fixed_samples)
        step = self._step(runner)
        scalars: Dict[str, List[float]] = {}
        model = self._unwrap(runner.model)
        was_training = model.training
        model.eval()
        try:
            for idx in self._fixed_indices:
                batch = runner.val_loop.dataloader.collate_fn([dataset[idx]])
                self._capture.enable(True)
                with torch.no_grad():
                    outputs = model.val_step(batch)
                self._capture.enable(False)
                sample = outputs[0]
                record = self._records(runner, outputs)[0]
                image = self._load_image(sample)
                drawings = self._emit_record(runner, record, sample, image, step)
                gt = _ground_truth(dataset, idx)
                evo = self._evolution_rows(runner, image, sample, 0, gt, drawings)
                self._store.save(self._sample_tag(runner, sample), step, evo)
                for key, value in evo['scalars'].items():
                    scalars.setdefault(key, []).append(value)
                self._capture.clear()
        finally:
            self._capture.clear()
            self._capture.enable(False)
            model.train(was_training)
        if scalars:
            means = {f'mmattnvis/{k}': float(np.nanmean(v)) for k, v in scalars.items()}
            runner.visualizer.add_scalars(means, step=step)
            runner.logger.info('mmattnvis ' + ', '.join(f'{k}: {v:.4f}'
                                                        for k, v in means.items()))

    def after_train(self, runner) -> None:
        self._close_sinks()
        if self._store is None or not is_main_process():
            return
        for tag, figure, frames in self._store.figures(self.evolution_cell):
            name = evolution_name(tag, type(self).__name__)
            runner.visualizer.add_image(name, figure, step=self._step(runner))
            write_image_atomic(osp.join(self._store.root, f'{name}.png'), figure)
            if self.evolution_video and len(frames) > 1:
                self._store.write_video(osp.join(self._store.root, name), frames,
                                        self.evolution_video)

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


def _ground_truth(dataset, idx: int) -> Dict[str, np.ndarray]:
    """Ground-truth boxes (original-image xyxy) and labels of a dataset entry, ignored ones out."""
    info = dataset.get_data_info(idx)
    inst = [i for i in info.get('instances', []) if not i.get('ignore_flag', 0)]
    boxes = np.array([i['bbox'] for i in inst], np.float32).reshape(-1, 4)
    labels = np.array([i['bbox_label'] for i in inst], np.int64)
    return {'bboxes': boxes, 'labels': labels}
