"""A dataset wrapper that leaves out samples whose image cannot be read.

In a dataset run (``tools/test.py``, ``runner.val()``) one unreadable image (a text file, an empty
or truncated file, corrupt JPEG data behind a valid header) would stop the run inside MMEngine's
dataloader. :class:`SkipUnreadableImages` decodes every image once when it is initialised, the
way ``LoadImageFromFile`` does (``mmcv.imfrombytes``), keeps the readable samples and records the
others in ``skipped`` as ``(path, reason)``; the run then reports them at the end. A skipped image
is one the model never saw: a metric computed from the annotation file (COCO) counts its objects
as missed, so the score of a run with skipped images is not inflated.

The check costs one decode per image (about 14 ms for a 768x576 JPEG on one core) before the run.
"""
import copy
import os.path as osp
from typing import Any, List, Optional, Tuple

import mmcv

from ..registry import DATASETS


def unreadable_image(path: Optional[str]) -> Optional[str]:
    """Why the image at ``path`` cannot be read as ``LoadImageFromFile`` reads it, or ``None``."""
    if not path or '://' in str(path):
        return None  # not a local file: left to the pipeline's file backend
    if not osp.isfile(path):
        return 'file not found'
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        return err.strerror or 'cannot be opened'
    if not data:
        return 'empty file'
    try:
        img = mmcv.imfrombytes(data, flag='color')
    except Exception:
        img = None
    if img is None or img.size == 0:
        return 'not an image, or corrupt or truncated image data'
    return None


@DATASETS.register_module()
class SkipUnreadableImages:
    """Wrap ``dataset`` (a dataset or its config) and leave out samples whose image cannot be
    read; ``skipped`` lists them as ``(img_path, reason)``.

    Args:
        dataset: The wrapped dataset or its config dict (built in the current default scope).
        lazy_init: Defer the scan to :meth:`full_init` (MMEngine calls it when it builds the
            dataloader).
        source: The config file, named when the pipeline fails on a readable image (then a
            pipeline setting is wrong, not the image).
    """

    def __init__(self, dataset: Any, lazy_init: bool = False,
                 source: Optional[str] = None) -> None:
        self.source = source
        if isinstance(dataset, dict):
            from mmengine.registry import DATASETS as ROOT_DATASETS
            dataset = ROOT_DATASETS.build(dataset)
        self.dataset = dataset
        self.keep: List[int] = []
        self.skipped: List[Tuple[str, str]] = []
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self.dataset.metainfo)

    def full_init(self) -> None:
        """Initialise the wrapped dataset and decode each image once."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self.keep, self.skipped = [], []
        for idx in range(len(self.dataset)):
            path = self._img_path(idx)
            problem = unreadable_image(path)
            if problem is None:
                self.keep.append(idx)
            else:
                self.skipped.append((str(path), problem))
        self._fully_initialized = True
        if self.skipped:
            from mmengine.logging import print_log
            print_log(f'SkipUnreadableImages: {len(self.skipped)} of {len(self.dataset)} '
                      'images cannot be read and are left out', logger='current',
                      level=30)  # WARNING

    def _img_path(self, idx: int) -> Optional[str]:
        info = self.dataset.get_data_info(idx) if hasattr(self.dataset, 'get_data_info') else {}
        return info.get('img_path') if isinstance(info, dict) else None

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self.keep[idx])

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, idx: int) -> Any:
        try:
            return self.dataset[self.keep[idx]]
        except Exception as err:
            # the image was readable: the pipeline's settings are at fault
            from ..utils.errors import UserInputError
            text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ''
            raise UserInputError(
                f'the data pipeline of {self.source or "the config"} failed on '
                f'{self._img_path(self.keep[idx])} ({type(err).__name__}: {text}); check its '
                'settings and --cfg-options') from None


def skip_unreadable_images(cfg: Any, loader: str, source: Optional[str] = None) -> None:
    """Wrap the dataset of ``cfg[loader]`` (e.g. ``'test_dataloader'``) in
    :class:`SkipUnreadableImages`, in place."""
    dataloader = cfg.get(loader, None)
    if not dataloader or 'dataset' not in dataloader:
        return
    if str(dataloader['dataset'].get('type', '')).endswith('SkipUnreadableImages'):
        return
    dataloader['dataset'] = dict(type='mmattnvis.SkipUnreadableImages',
                                 dataset=dataloader['dataset'], source=source)


def skipped_images(dataloader: Any) -> Tuple[List[Tuple[str, str]], int]:
    """``(skipped, total)`` of a dataloader whose dataset is :class:`SkipUnreadableImages`
    (``([], len)`` otherwise)."""
    dataset = getattr(dataloader, 'dataset', None)
    if isinstance(dataset, SkipUnreadableImages):
        return list(dataset.skipped), len(dataset) + len(dataset.skipped)
    return [], len(dataset) if dataset is not None else 0
