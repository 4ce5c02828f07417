"""A dataset wrapper that leaves out samples whose image cannot be read.

In a dataset run (``tools/test.py``, ``runner.val()``) one unreadable image (a text file, an empty
or truncated file, corrupt JPEG data behind a valid header, also when libjpeg only warns) would
stop the run inside MMEngine's dataloader, or be evaluated as garbage.
:class:`SkipUnreadableImages` decodes every image once when it is initialised, the way
``LoadImageFromFile`` does (``mmcv.imfrombytes``), keeps the readable samples and records the
others in ``skipped`` as ``(path, reason)``; the run then reports them at the end. A skipped image
is one the model never saw: a metric computed from the annotation file (COCO) counts its objects
as missed, so the score of a run with skipped images is not inflated. A readable image whose
decoded size differs from the ``height`` / ``width`` of its annotation is kept (its boxes may still
be right, e.g. a rescaled copy) and listed in ``mismatched``; the run names it in a ``warning:``.

The check costs one decode per image (about 14 ms for a 768x576 JPEG on one core) before the run.
"""
import copy
import os.path as osp
from typing import Any, List, Optional, Tuple

import mmcv

from ..registry import DATASETS
from ..utils.image_decode import decode_checked


def unreadable_image(path: Optional[str]) -> Optional[str]:
    """Why the image at ``path`` cannot be read as ``LoadImageFromFile`` reads it, or ``None``."""
    return check_image(path)[0]


def check_image(path: Optional[str]) -> Tuple[Optional[str], Optional[Tuple[int, int]]]:
    """``(problem, (height, width))`` of the image at ``path`` decoded as ``LoadImageFromFile``
    decodes it (``mmcv.imfrombytes``): ``problem`` is ``None`` for a readable image; a JPEG whose
    decoder warned about damaged data is unreadable (:func:`~mmattnvis.utils.image_decode.
    decode_checked`). The size is ``None`` for an unreadable image or a remote path."""
    if not path or '://' in str(path):
        return None, None  # not a local file: left to the pipeline's file backend
    if not osp.isfile(path):
        return 'file not found', None
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        return err.strerror or 'cannot be opened', None
    if not data:
        return 'empty file', None
    img, problem = decode_checked(lambda: mmcv.imfrombytes(data, flag='color'))
    if img is None:
        if problem == 'corrupt or truncated image data':
            problem = 'not an image, or corrupt or truncated image data'
        return problem, None
    return None, (int(img.shape[0]), int(img.shape[1]))


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
        self.mismatched: List[Tuple[str, str]] = []
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
        self.keep, self.skipped, self.mismatched = [], [], []
        for idx in range(len(self.dataset)):
            info = self._info(idx)
            path = info.get('img_path')
            problem, shape = check_image(path)
            if problem is not None:
                self.skipped.append((str(path), problem))
                continue
            self.keep.append(idx)
            mismatch = size_mismatch(shape, info)
            if mismatch:
                self.mismatched.append((str(path), mismatch))
        self._fully_initialized = True
        if self.skipped:
            from mmengine.logging import print_log
            print_log(f'SkipUnreadableImages: {len(self.skipped)} of {len(self.dataset)} '
                      'images cannot be read and are left out', logger='current',
                      level=30)  # WARNING

    def _info(self, idx: int) -> dict:
        info = self.dataset.get_data_info(idx) if hasattr(self.dataset, 'get_data_info') else {}
        return info if isinstance(info, dict) else {}

    def _img_path(self, idx: int) -> Optional[str]:
        return self._info(idx).get('img_path')

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


def size_mismatch(shape: Optional[Tuple[int, int]], info: dict) -> Optional[str]:
    """``'decoded HxW, annotated HxW'`` when the decoded size differs from the ``height`` /
    ``width`` of the sample's annotation (boxes and the metric then disagree with the pixels),
    else ``None``."""
    try:
        annotated = (int(info['height']), int(info['width']))
    except (KeyError, TypeError, ValueError):
        return None
    if shape is None or tuple(shape) == annotated:
        return None
    return (f'decoded {shape[0]}x{shape[1]}, annotated {annotated[0]}x{annotated[1]} '
            '(height x width)')


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


def mismatched_images(dataloader: Any) -> List[Tuple[str, str]]:
    """``(path, 'decoded ..., annotated ...')`` of the kept images of a
    :class:`SkipUnreadableImages` dataloader whose size differs from their annotation."""
    dataset = getattr(dataloader, 'dataset', None)
    return list(dataset.mismatched) if isinstance(dataset, SkipUnreadableImages) else []


def skipped_images(dataloader: Any) -> Tuple[List[Tuple[str, str]], int]:
    """``(skipped, total)`` of a dataloader whose dataset is :class:`SkipUnreadableImages`
    (``([], len)`` otherwise)."""
    dataset = getattr(dataloader, 'dataset', None)
    if isinstance(dataset, SkipUnreadableImages):
        return list(dataset.skipped), len(dataset) + len(dataset.skipped)
    return [], len(dataset) if dataset is not None else 0
