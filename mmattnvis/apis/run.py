"""The one shape of every task: ``Run(model, options).run_batch(inputs, data_samples)``.

A CLI prepares images with the model's test pipeline and a hook takes the runner's own data
batch; both hand the same ``(inputs, data_samples)`` to :meth:`Run.run_batch` and get one
:class:`~mmattnvis.structures.ResultRecord` per sample. A Run never draws, writes or shows:
drawing is a sink (see docs/runner_api.md).
"""
import contextlib
import dataclasses
import os.path as osp
import zlib
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Sequence, Type, TypeVar

import numpy as np
import torch

from ..structures import ResultRecord
from .coco_gt import GroundTruth
from .inference import build_test_pipeline, prepare_batch
from .options import OptionError

_Options = TypeVar('_Options', bound='RunOptions')


@dataclasses.dataclass
class RunOptions:
    """Base of the options dataclasses: :meth:`validate` and :meth:`from_fields`."""

    def validate(self) -> None:
        """Raise :class:`OptionError` (config field in ``field``) for a bad value."""

    @classmethod
    def from_fields(cls: Type[_Options], **fields: Any) -> _Options:
        """Options from flat, CLI-like fields (a hook's config); unknown fields are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        for key in fields:
            if key not in names:
                raise OptionError(key, f'unknown field {key!r}; choose from '
                                  f'{", ".join(sorted(names))}')
        return cls(**fields)


class Run:
    """Base of the tasks' Runs.

    Subclasses set :attr:`task` (the records' task), :attr:`options_class`, implement
    :meth:`run_batch` and, for dataset-level numbers, :meth:`summarize`.

    Args:
        model: The detector (unwrapped, in eval mode).
        options: Validated here (:class:`OptionError` before any image).
        cfg: The model's config, for :meth:`run_images` when ``model`` has no ``cfg``.
    """

    task: ClassVar[str] = ''
    options_class: ClassVar[Type[RunOptions]] = RunOptions
    #: ``run_batch`` needs gradients (a hook runs it under ``torch.enable_grad()``).
    needs_grad: bool = False
    options: Any

    def __init__(self, model, options: Any, cfg: Any = None) -> None:
        if not isinstance(options, self.options_class):
            raise OptionError('options', f'{type(self).__name__} takes '
                              f'{self.options_class.__name__}, got {type(options).__name__}')
        options.validate()
        self.model = model
        self.options = options
        self._cfg = cfg
        self._pipeline = None
        #: The dataset's meta (``classes``) when the model has none (a runner's model; a hook
        #: sets it from its loop's dataset); default ``model.dataset_meta``.
        self.dataset_meta: Optional[Dict[str, Any]] = None

    @property
    def classes(self) -> Optional[Sequence[str]]:
        meta = self.dataset_meta or getattr(self.model, 'dataset_meta', None) or {}
        return meta.get('classes')

    @property
    def pipeline(self):
        """The model's test pipeline reading arrays (built on first use)."""
        if self._pipeline is None:
            self._pipeline = build_test_pipeline(self._cfg if self._cfg is not None
                                                 else self.model.cfg)
        return self._pipeline

    def run_batch(self, inputs: Sequence[torch.Tensor],
                  data_samples: Sequence[Any]) -> List[ResultRecord]:
        """One result record per sample of a test-pipeline batch."""
        raise NotImplementedError

    def run_images(self, images_bgr: Sequence[np.ndarray],
                   paths: Optional[Sequence[str]] = None) -> List[ResultRecord]:
        """:meth:`run_batch` on images (BGR) prepared with the model's test pipeline."""
        data = prepare_batch(images_bgr, self.pipeline, paths)
        return self.run_batch(data['inputs'], data['data_samples'])

    @classmethod
    def summarize(cls, records: Sequence[ResultRecord]) -> Dict[str, float]:
        """Dataset-level numbers of a run from all its records (every rank's)."""
        return {}


def batch_dict(inputs: Sequence[torch.Tensor], data_samples: Sequence[Any]) -> Dict[str, Any]:
    """The ``test_step`` batch of ``inputs`` and ``data_samples``."""
    return {'inputs': list(inputs), 'data_samples': list(data_samples)}


def sample_stem(sample) -> str:
    """The record stem of a data sample: ``<image stem>_id<img_id>`` (the same on any rank)."""
    meta = sample.metainfo
    stem = osp.splitext(osp.basename(str(meta.get('img_path') or 'image')))[0]
    img_id = meta.get('img_id', None)
    if hasattr(img_id, 'item'):
        img_id = img_id.item()
    return stem if img_id is None else f'{stem}_id{img_id}'


def image_seed(seed: int, sample) -> int:
    """A seed for one image from the run's seed and the image's name: random draws per image do
    not depend on which images came before it (or on which rank)."""
    name = osp.basename(str(sample.metainfo.get('img_path') or ''))
    return (int(seed) * 1000003 + zlib.crc32(name.encode('utf-8'))) % (2**32)


def attach_ground_truth(sample, boxes: np.ndarray, labels: np.ndarray,
                        rles: Optional[list] = None) -> None:
    """Set ``gt_instances`` (original-image xyxy boxes) of a data sample, as a dataset with
    ``LoadAnnotations`` after ``Resize`` in its test pipeline does; the objects' masks (COCO
    RLEs, ``None`` where absent) go to the sample's ``gt_rles`` metainfo."""
    from mmengine.structures import InstanceData
    gt = InstanceData()
    gt.bboxes = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4))
    gt.labels = torch.as_tensor(np.asarray(labels, np.int64).reshape(-1))
    sample.gt_instances = gt
    if rles is not None and any(r is not None for r in rles):
        sample.set_metainfo({'gt_rles': list(rles)})


def ground_truth(sample):
    """The :class:`~.coco_gt.GroundTruth` ``(boxes (K, 4), labels (K,))`` of a sample's
    ``gt_instances`` (ignored ones out; masks from ``gt_rles``), or ``None`` when it has none."""
    if 'gt_instances' not in sample:
        return None
    gt = sample.gt_instances
    boxes = gt.bboxes
    boxes = getattr(boxes, 'tensor', boxes)
    boxes = np.asarray(boxes.detach().cpu() if hasattr(boxes, 'detach') else boxes,
                       np.float32).reshape(-1, 4)
    labels = np.asarray(gt.labels.cpu() if hasattr(gt.labels, 'cpu') else gt.labels,
                        np.int64).reshape(-1)
    rles = sample.metainfo.get('gt_rles')
    masks = gt.masks if 'masks' in gt else None  # a dataset with LoadAnnotations(with_mask)
    dense = None
    if masks is not None:
        arr = masks.to_ndarray() if hasattr(masks, 'to_ndarray') else np.asarray(masks)
        dense = [np.asarray(m, bool) for m in arr]
    return GroundTruth(boxes, labels, rles if rles is not None and len(rles) == len(boxes)
                       else None, dense)


@contextlib.contextmanager
def kept_model_state(model: torch.nn.Module) -> Iterator[None]:
    """Whatever a Run changes on the model is put back on exit, also when it raises: the train
    / eval mode of every module, ``requires_grad`` and ``.grad`` of every parameter."""
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        yield
    finally:
        for m, training in modes:
            if m.training != training:
                m.training = training
        for p, requires_grad, grad in params:  # only what changed (cheap on every batch)
            if p.requires_grad != requires_grad:
                p.requires_grad_(requires_grad)
            if p.grad is not grad:
                p.grad = grad


__all__ = ['Run', 'RunOptions', 'batch_dict', 'kept_model_state', 'sample_stem', 'image_seed',
           'attach_ground_truth', 'ground_truth']
