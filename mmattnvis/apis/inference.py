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
from ..utils.image_decode import decode_checked

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def collect_images(path: str) -> List[str]:
    """An image file, or the images of a directory (sorted, recursively).

    A single file must look like an image (header check). In a directory, files that do not are
    kept in the list: a dataset run skips and reports them (:class:`UnreadableImages`), so one
    bad file does not stop the others; only a directory in which no file looks like an image
    is an error here.

    Raises:
        UserInputError: Missing path, non-image file, or a directory without (readable) images.
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
        if all(image_problem(f) for f in files):
            raise UserInputError(f'none of the {len(files)} image file(s) in {path} can be read '
                                 f'(e.g. {osp.basename(files[0])}: {image_problem(files[0])})')
        return files
    problem = image_problem(path)
    if problem:  # header check only (cheap): a bad file fails before the model is built
        raise UserInputError(f'cannot read image {path}: {problem}')
    return [path]


def image_problem(path: str) -> Optional[str]:
    """Why ``path`` is certainly not a readable image (header check), or ``None``."""
    try:
        if osp.getsize(path) == 0:
            return 'empty file'
    except OSError as err:
        return err.strerror or 'cannot be opened'
    if not cv2.haveImageReader(path):
        return 'not an image (unknown format)'
    return None


def load_image(path: str) -> np.ndarray:
    """Read an image as BGR uint8 (OpenMMLab's convention).

    Raises:
        UserInputError: The file cannot be decoded as an image, or the JPEG decoder warned that
            its data is corrupt (the picture would be garbage).
    """
    problem = image_problem(path)
    img = None
    if problem is None:  # libjpeg's corrupt-data warnings count as unreadable
        img, problem = decode_checked(lambda: mmcv.imread(path, channel_order='bgr'))
    if problem is not None:
        raise UserInputError(f'cannot read image {path}: {problem}')
    assert img is not None
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img


class UnreadableImages:
    """The images of a dataset run that could not be read: skipped, counted and named.

    ``load`` returns ``None`` for a bad image (and records why); at the end ``finish`` prints one
    ``warning:`` line naming them, or raises when no image at all could be read.
    """

    def __init__(self) -> None:
        self.skipped: List[Tuple[str, str]] = []

    def load(self, path: str) -> Optional[np.ndarray]:
        """The image, or ``None`` (recorded) when it cannot be read."""
        try:
            return load_image(path)
        except UserInputError as err:
            self.skipped.append((path, str(err).split(f'{path}: ', 1)[-1]))
            return None

    def summary(self, total: int) -> Optional[str]:
        """``warning: skipped K of N images ...`` or ``None`` when nothing was skipped."""
        return skipped_summary(self.skipped, total)

    def finish(self, total: int, done: Optional[str] = None) -> None:
        """End of a run over ``total`` images: raise when none could be read, else print
        ``done`` (stdout) and then the summary of skipped images (stderr), if any."""
        import sys

        from ..utils.cli import end_open_line
        end_open_line()  # the progress bar's line
        if self.skipped and len(self.skipped) >= total:
            if total == 1:
                path, why = self.skipped[0]
                raise UserInputError(f'cannot read image {path}: {why}')
            raise UserInputError(f'none of the {total} image(s) could be read: '
                                 + _name_few(self.skipped))
        if done:
            print(done)
        line = self.summary(total)
        if line:
            sys.stdout.flush()
            print(line, file=sys.stderr)


def skipped_summary(skipped: Sequence[Tuple[str, str]], total: int) -> Optional[str]:
    """The one summary line of skipped images (``(path, reason)`` pairs)."""
    if not skipped:
        return None
    return (f'warning: skipped {len(skipped)} of {total} image(s) that could not be read: '
            + _name_few(skipped))


def _name_few(skipped: Sequence[Tuple[str, str]], n: int = 10) -> str:
    shown = '; '.join(f'{p} ({why})' for p, why in skipped[:n])
    return shown + (f'; and {len(skipped) - n} more' if len(skipped) > n else '')


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
        try:
            pipeline = Compose(pipeline_cfg)
        except Exception as err:
            raise UserInputError(f'the test pipeline of {_config_name(cfg)} cannot be built: '
                                 f'{_error_line(err)}') from None
    pipeline.mmattnvis_config = _config_name(cfg)  # named in the errors of prepare_batch
    return pipeline


def _config_name(cfg) -> str:
    return getattr(cfg, 'filename', None) or 'the config'


def _error_line(err: BaseException) -> str:
    text = str(err).strip()
    return f'{type(err).__name__}: {text.splitlines()[0][:300]}' if text else type(err).__name__


def prepare_batch(images: Sequence[np.ndarray], pipeline: Compose,
                  paths: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run ``pipeline`` on BGR arrays and collate them into a ``test_step`` batch."""
    items = []
    for i, img in enumerate(images):
        path = paths[i] if paths else None
        try:
            item = pipeline(dict(img=img, img_id=i, img_path=path))
        except UserInputError:
            raise
        except Exception as err:
            # The image was read already: a failure here comes from a pipeline setting (a value
            # of the wrong type, e.g. from --cfg-options), not from the image.
            config = getattr(pipeline, 'mmattnvis_config', 'the config')
            raise UserInputError(f'the test pipeline of {config} failed'
                                 + (f' on {path}' if path else '') + f' ({_error_line(err)}); '
                                 'check its settings and --cfg-options') from None
        if item is None:
            raise UserInputError(f'the test pipeline of '
                                 f"{getattr(pipeline, 'mmattnvis_config', 'the config')} "
                                 'dropped the image (a transform returned None)')
        if path is not None and 'data_samples' in item:
            # LoadImageFromNDArray sets img_path to None: the records name their image by it
            item['data_samples'].set_metainfo({'img_path': path})
        items.append(item)
    return pseudo_collate(items)


@torch.no_grad()
def run_test_step(model: nn.Module, data: Dict[str, Any]) -> list:
    """``model.test_step`` without gradients; returns the data samples with predictions."""
    return model.test_step(data)  # type: ignore[operator]  # nn.Module attributes are typed Tensor | Module


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
