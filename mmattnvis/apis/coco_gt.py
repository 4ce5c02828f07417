"""Ground truth of an image folder: a COCO-style folder (``annotations.json`` + ``images/``) as
written by ``tools/make_shapes.py``, per image file name."""
import json
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

from ..datasets.shapes import decode_rle
from ..utils.errors import UserInputError
from .inference import collect_images


def find_dataset(path: str):
    """Images of ``path`` and, if ``path`` holds a COCO ``annotations.json``, the ground truth
    per file name as ``{basename: GroundTruth}`` (``(boxes (K, 4) xyxy, labels (K,))`` with the
    objects' masks where the annotations have them).

    ``path`` may be a folder of images or a COCO-style folder (``annotations.json`` plus
    ``images/``), as written by ``tools/make_shapes.py``.
    """
    ann = osp.join(path, 'annotations.json') if osp.isdir(path) else None
    if ann and osp.isfile(ann):
        img_dir = osp.join(path, 'images') if osp.isdir(osp.join(path, 'images')) else path
        images = collect_images(img_dir)
        return images, _coco_gt(ann)
    return collect_images(path), None


def _coco_gt(ann_file: str):
    """Ground truth per file name of a COCO annotation file; a one-line error when the file is
    not valid JSON or not COCO-shaped."""
    try:
        with open(ann_file, encoding='utf-8') as f:
            coco = json.load(f)
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f'annotations {ann_file} cannot be read: {err}') from None
    except json.JSONDecodeError as err:
        raise UserInputError(f'annotations {ann_file} is not valid JSON ({err.msg} at line '
                             f'{err.lineno}, column {err.colno})') from None
    try:
        return _gt_by_file(coco)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as err:
        what = f'missing key {err}' if isinstance(err, KeyError) else str(err).splitlines()[0]
        raise UserInputError(f'annotations {ann_file} is not a COCO detection file '
                             f'({type(err).__name__}: {what})') from None


def _gt_by_file(coco: dict):
    if not isinstance(coco, dict):
        raise TypeError(f'top level is a {type(coco).__name__}, expected an object with '
                        '"images", "annotations" and "categories"')
    cat_ids = sorted(c['id'] for c in coco.get('categories', []))
    label_of = {cid: i for i, cid in enumerate(cat_ids)}
    by_image: Dict[int, list] = {}
    for a in coco.get('annotations', []):
        if a.get('iscrowd', 0):
            continue
        x, y, w, h = (float(v) for v in a['bbox'])
        seg = a.get('segmentation')
        by_image.setdefault(a['image_id'], []).append(
            ((x, y, x + w, y + h, label_of[a['category_id']]),
             seg if isinstance(seg, dict) else None))
    gt = {}
    for im in coco.get('images', []):
        rows = by_image.get(im['id'], [])
        arr = np.asarray([r for r, _ in rows], dtype=np.float32).reshape(-1, 5)
        gt[osp.basename(im['file_name'])] = GroundTruth(arr[:, :4], arr[:, 4].astype(np.int64),
                                                        [m for _, m in rows])
    return gt


class GroundTruth(tuple):
    """``(boxes (K, 4) xyxy, labels (K,))`` of one image, with :meth:`mask` for the objects
    whose annotation has an uncompressed-RLE ``segmentation`` (the shapes generator's) or whose
    dataset loaded masks (``LoadAnnotations(with_mask=True)``: dense ``masks``)."""

    rles: List[Optional[dict]]
    masks: Optional[List[np.ndarray]]

    def __new__(cls, boxes: np.ndarray, labels: np.ndarray, rles: Optional[list] = None,
                masks: Optional[List[np.ndarray]] = None):
        obj = super().__new__(cls, (boxes, labels))
        obj.rles = list(rles) if rles is not None else [None] * len(boxes)
        obj.masks = list(masks) if masks is not None and len(masks) == len(boxes) else None
        return obj

    def mask(self, index: int, shape) -> Optional[np.ndarray]:
        """Boolean mask of object ``index`` on an image of ``shape``, or ``None`` (no mask, or
        one that does not fit the image)."""
        if self.masks is not None:
            dense = np.asarray(self.masks[index], bool)
            return dense if dense.shape == tuple(shape[:2]) else None
        rle = self.rles[index]
        if rle is None:
            return None
        try:
            m = decode_rle(rle)
        except (ValueError, TypeError, KeyError):
            return None
        return m if m.shape == tuple(shape[:2]) else None
