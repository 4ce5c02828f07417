"""Training-time drawing of the hooks: the fixed validation samples after every validation, and
their evolution figures when training ends (a mixin of :class:`~.base.CaptureVisHook`)."""
import os.path as osp
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import is_main_process

from ..utils.cli import write_image_atomic
from .evolution import EvolutionStore, evolution_name, resolve_fixed_samples


class TrainingDrawing:
    """``before_train`` / ``after_val_epoch`` / ``after_train`` of a visualisation hook.

    Needs from the hook: ``_capture``, ``_records``, ``_emit_record``, ``_load_image``,
    ``_evolution_rows``, ``_sample_tag``, ``_step``, ``_training``, ``_unwrap``, ``_out_root``,
    ``_open_results`` and ``_close_results``.
    """

    _capture: Any
    _store: Optional[EvolutionStore]
    _fixed_indices: Optional[List[int]]

    if TYPE_CHECKING:  # the rest comes from the hook this is mixed into
        def __getattr__(self, name: str) -> Any: ...

    def before_train(self, runner) -> None:
        self._store = EvolutionStore(self._out_root(runner), type(self).__name__)
        if is_main_process():
            # A fresh run starts a new evolution; a resumed one keeps the epochs it has done.
            self._store.drop_after(runner.epoch)
        self._open_results(runner, 'train')

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
                drawings = self._emit_record(runner, record, sample, image, step,
                                             order=(step, idx))
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
        self._close_results(runner)
        if self._store is None or not is_main_process():
            return
        for tag, figure, frames in self._store.figures(self.evolution_cell):
            name = evolution_name(tag, type(self).__name__)
            runner.visualizer.add_image(name, figure, step=self._step(runner))
            write_image_atomic(osp.join(self._store.root, f'{name}.png'), figure)
            if self.evolution_video and len(frames) > 1:
                self._store.write_video(osp.join(self._store.root, name), frames,
                                        self.evolution_video)


def _ground_truth(dataset, idx: int) -> Dict[str, np.ndarray]:
    """Ground-truth boxes (original-image xyxy) and labels of a dataset entry, ignored ones out."""
    info = dataset.get_data_info(idx)
    inst = [i for i in info.get('instances', []) if not i.get('ignore_flag', 0)]
    boxes = np.array([i['bbox'] for i in inst], np.float32).reshape(-1, 4)
    labels = np.array([i['bbox_label'] for i in inst], np.int64)
    return {'bboxes': boxes, 'labels': labels}
