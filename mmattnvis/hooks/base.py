"""Base for visualisation hooks that capture tensors during ``runner.val()`` / ``runner.test()``.

The capture is attached once per loop (``before_val`` / ``before_test``), records only on the
iterations that are drawn (``interval``, ``max_samples``), is cleared after drawing, and is removed
when the loop ends -- or fails: the loop's ``run`` is wrapped on this runner's loop instance (no
global patching) so that an exception inside the loop still detaches every hook.
"""
import os.path as osp
from typing import Any, List, Optional, Sequence

import mmcv
import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from ..utils.cli import write_image_atomic


class HookConfigError(ValueError):
    """A bad hook argument; the message names the hook and the field."""


class CaptureVisHook(Hook):
    """Shared lifecycle of mmattnvis visualisation hooks.

    Subclasses implement :meth:`_make_capture` (returns an object with ``attach``, ``remove``,
    ``enable``, ``clear``), :meth:`_validate` and :meth:`_draw_sample`.

    Args:
        interval: Draw every ``interval``-th iteration (batch) of the loop.
        max_samples: Stop drawing after this many samples per loop (``None``: no limit).
        draw_pred: Draw predictions on the images.
        draw_gt: Draw ground-truth boxes.
        score_thr: Score threshold of drawn predictions.
        out_dir: Also write PNGs here (``None``: only the runner visualizer's backends).
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 50,
                 max_samples: Optional[int] = None,
                 draw_pred: bool = True,
                 draw_gt: bool = False,
                 score_thr: float = 0.3,
                 out_dir: Optional[str] = None) -> None:
        self.interval = interval
        self.max_samples = max_samples
        self.draw_pred = draw_pred
        self.draw_gt = draw_gt
        self.score_thr = score_thr
        self.out_dir = out_dir
        self._capture = None
        self._selected = False
        self._drawn = 0
        self._wrapped_loops: List[BaseLoop] = []
        self._mode = 'test'

    # -- configuration -----------------------------------------------------------------------
    def _fail(self, field: str, problem: str) -> None:
        raise HookConfigError(f'{type(self).__name__}.{field}: {problem}')

    def _validate(self, model) -> None:
        if not isinstance(self.interval, int) or isinstance(self.interval, bool) \
                or self.interval <= 0:
            self._fail('interval', f'must be a positive integer, got {self.interval!r}')
        if self.max_samples is not None and (not isinstance(self.max_samples, int)
                                             or self.max_samples < 0):
            self._fail('max_samples', f'must be None or an integer >= 0, got '
                       f'{self.max_samples!r}')
        if not 0.0 <= float(self.score_thr) <= 1.0:
            self._fail('score_thr', f'must be within [0, 1], got {self.score_thr!r}')

    def _make_capture(self, model):
        raise NotImplementedError

    def _draw_sample(self, runner, image_rgb: np.ndarray, sample, index: int) -> List[tuple]:
        """Return ``[(name, rgb_image), ...]`` for one sample of a drawn batch."""
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------
    @staticmethod
    def _unwrap(model):
        return model.module if is_model_wrapper(model) else model

    def before_run(self, runner) -> None:
        self._validate(self._unwrap(runner.model))
        for attr in ('_test_loop', '_val_loop'):
            loop = getattr(runner, attr, None)
            if isinstance(loop, BaseLoop) and loop not in self._wrapped_loops:
                self._wrap_loop(loop)

    def _wrap_loop(self, loop: BaseLoop) -> None:
        original = loop.run
        hook = self

        def run_and_detach(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            except BaseException:
                hook._detach()
                hook._unwrap_loops()
                raise

        run_and_detach._mmattnvis_original = original  # type: ignore[attr-defined]
        loop.run = run_and_detach
        self._wrapped_loops.append(loop)

    def _unwrap_loops(self) -> None:
        for loop in self._wrapped_loops:
            run = loop.__dict__.get('run')
            if run is not None and hasattr(run, '_mmattnvis_original'):
                del loop.run  # the class method is visible again
        self._wrapped_loops = []

    def after_run(self, runner) -> None:
        self._detach()
        self._unwrap_loops()

    def _attach(self, runner, mode: str) -> None:
        self._detach()
        self._mode = mode
        self._drawn = 0
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

    def after_test(self, runner) -> None:
        self._detach()

    def _before_iter(self, batch_idx: int) -> None:
        if self._capture is None:
            return
        room = self.max_samples is None or self._drawn < self.max_samples
        self._selected = room and batch_idx % self.interval == 0
        self._capture.enable(self._selected)

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._before_iter(batch_idx)

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._before_iter(batch_idx)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._after_iter(runner, batch_idx, outputs)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._after_iter(runner, batch_idx, outputs)

    def _after_iter(self, runner, batch_idx: int, outputs: Optional[Sequence[Any]]) -> None:
        if self._capture is None or not self._selected:
            return
        try:
            for i, sample in enumerate(outputs or []):
                if self.max_samples is not None and self._drawn >= self.max_samples:
                    break
                image = self._load_image(sample)
                for name, drawn in self._draw_sample(runner, image, sample, i):
                    runner.visualizer.add_image(name, drawn, step=runner.iter)
                    if self.out_dir:
                        write_image_atomic(self._out_file(runner, name), drawn)
                self._drawn += 1
        finally:
            # Drawn tensors are released at once; memory stays flat over the loop.
            self._capture.clear()
            self._capture.enable(False)
            self._selected = False

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
        if getattr(runner, 'world_size', 1) > 1:
            tag += f'_rank{runner.rank}'
        return tag

    def _out_file(self, runner, name: str) -> str:
        out_dir = self.out_dir
        if not osp.isabs(out_dir):
            out_dir = osp.join(runner.work_dir, out_dir)
        return osp.join(out_dir, self._mode, f'{name}.png')
