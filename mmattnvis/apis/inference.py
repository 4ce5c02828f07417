"""Run a detector's own test pipeline on images and keep each image's geometry."""
import copy
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope

from ..render.geometry import ImageGeometry
from ..utils.errors import UserInputError

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def collect_images(path: str) -> List[str]:
    """An image file, or the images of a directory (sorted, recursively).

    Raises:
        UserInputError: Missing path, non-image file, or a directory without images.
    """
    if not osp.exists(path):
        raise UserInputError(f'image path not found: {path}')
    if osp.isdir(path):
        files = []
        for root, _, names in os.walk(path):
            files += [osp.join(root, n) for n in names if n.lower().endswith(IMG_EXTENSIONS)]
        if not files:
            raise UserInputError(f'no images ({", ".join(IMG_EXTENSIONS)}) in directory: {path}')
        files = sorted(files)
    else:
        files = [path]
    for f in files:
        # header check only (cheap): a bad file fails before the model is built
        if osp.getsize(f) == 0 or not cv2.haveImageReader(f):
            raise UserInputError(f'cannot read image (empty or not an image): {f}')
    return files


def load_image(path: str) -> np.ndarray:
    """Read an image as BGR uint8 (OpenMMLab's convention).

    Raises:
        UserInputError: The file cannot be decoded as an image.
    """
    try:
        img = mmcv.imread(path, channel_order='bgr')
    except Exception:
        img = None
    if img is None or img.size == 0:
        raise UserInputError(f'cannot read image (missing, empty or not an image): {path}')
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img


def build_test_pipeline(cfg) -> Compose:
    """The config's test pipeline, reading images from arrays instead of files."""
    from mmdet.utils import get_test_pipeline_cfg
    pipeline_cfg = copy.deepcopy(get_test_pipeline_cfg(cfg))
    first = pipeline_cfg[0]
    if 'LoadImageFromFile' in first['type'] or 'LoadImageFromNDArray' in first['type']:
        first['type'] = 'mmdet.LoadImageFromNDArray'
    else:
        raise UserInputError(f"the test pipeline starts with {first['type']}, "
                             'expected an image loader (LoadImageFromFile)')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        return Compose(pipeline_cfg)


def prepare_batch(images: Sequence[np.ndarray], pipeline: Compose,
                  paths: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run ``pipeline`` on BGR arrays and collate them into a ``test_step`` batch."""
    items = []
    for i, img in enumerate(images):
        item = pipeline(dict(img=img, img_id=i, img_path=paths[i] if paths else None))
        items.append(item)
    return pseudo_collate(items)


@torch.no_grad()
def run_test_step(model: nn.Module, data: Dict[str, Any]) -> list:
    """``model.test_step`` without gradients; returns the data samples with predictions."""
    return model.test_step(data)


def geometries(data_samples: Sequence[Any]) -> List[ImageGeometry]:
    """The :class:`ImageGeometry` of each sample of a processed batch."""
    return [ImageGeometry.from_metainfo(s.metainfo) for s in data_samples]


def bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    """BGR -> RGB as a new contiguous array (OpenCV's conversion for 8-bit 3-channel images,
    several times faster than copying a reversed view)."""
    if img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img[..., ::-1])


def batched(seq: Sequence[Any], size: int) -> List[Tuple[int, Sequence[Any]]]:
    """Chunks of ``size`` (the last one shorter), with their start index."""
    size = max(1, int(size))
    return [(i, seq[i:i + size]) for i in range(0, len(seq), size)]
