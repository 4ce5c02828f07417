"""Deterministic synthetic-shapes detection data in COCO format.

Images of 128-320 px with 1-6 objects from four classes (circle, square, triangle, star), random
colours and sizes, partial overlaps, textured / noisy backgrounds and distractor clutter (thin
lines and small blobs that are not objects). ``generate_shapes_dataset`` writes ``images/`` and an
``annotations.json`` that MMDet's ``CocoDataset`` reads; each annotation's ``segmentation`` is
the object's exact visible mask (after occlusion by later objects) as COCO uncompressed RLE
(:func:`decode_rle`), for the mask-based faithfulness metrics.
"""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

SHAPES_CLASSES = ('circle', 'square', 'triangle', 'star')
SHAPES_PALETTE = [(220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 170, 0)]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(0, 3)
    base = rng.integers(40, 215, size=3).astype(np.float32)
    if kind == 0:  # smooth gradient
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        direction = rng.normal(size=2)
        ramp = (gx * direction[0] + gy * direction[1])
        ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6) - 0.5
        img = base[None, None] + ramp[..., None] * rng.uniform(30, 90, size=3)
    elif kind == 1:  # low-frequency blobs
        small = rng.uniform(-1, 1, size=(max(2, h // 32), max(2, w // 32), 3)).astype(np.float32)
        img = base[None, None] + cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * 40
    else:  # stripes
        period = rng.uniform(6, 20)
        angle = rng.uniform(0, math.pi)
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        stripes = np.sin((gx * math.cos(angle) + gy * math.sin(angle)) * 2 * math.pi / period)
        img = base[None, None] + stripes[..., None] * rng.uniform(8, 25)
    img = img + rng.normal(0, rng.uniform(3, 12), size=img.shape)
    return img


def _polygon(cls: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    if cls == 'square':
        pts = [(math.cos(angle + math.pi / 4 + k * math.pi / 2), math.sin(angle + math.pi / 4 +
                                                                         k * math.pi / 2))
               for k in range(4)]
    elif cls == 'triangle':
        pts = [(math.cos(angle + k * 2 * math.pi / 3), math.sin(angle + k * 2 * math.pi / 3))
               for k in range(3)]
    elif cls == 'star':
        pts = []
        for k in range(10):
            rad = 1.0 if k % 2 == 0 else 0.45
            a = angle + k * math.pi / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
    else:
        raise ValueError(cls)
    return np.array([(cx + r * x, cy + r * y) for x, y in pts], dtype=np.float64)


def _draw_object(img: np.ndarray, mask: np.ndarray, cls: str, cx: float, cy: float, r: float,
                 angle: float, color: Tuple[int, int, int]) -> None:
    shift = 4  # sub-pixel drawing
    scale = 1 << shift
    if cls == 'circle':
        center = (int(round(cx * scale)), int(round(cy * scale)))
        rad = int(round(r * scale))
        cv2.circle(img, center, rad, color, -1, cv2.LINE_AA, shift)
        cv2.circle(mask, center, rad, 1, -1, cv2.LINE_8, shift)  # type: ignore[call-overload]  # stubs: colour must be a sequence
    else:
        pts = np.round(_polygon(cls, cx, cy, r, angle) * scale).astype(np.int32)
        cv2.fillPoly(img, [pts], color, cv2.LINE_AA, shift)
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, shift)  # type: ignore[call-overload]  # stubs: colour must be a sequence


def _distractors(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(2, 8))):
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.6:
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p1, p2, color, int(rng.integers(1, 3)), cv2.LINE_AA)
        else:
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            cv2.ellipse(img, center, axes, 0, 0, 360, color, -1, cv2.LINE_AA)


def encode_rle(mask: np.ndarray) -> Dict:
    """COCO uncompressed RLE of a boolean ``(H, W)`` mask: run lengths in column-major order,
    starting with a (possibly empty) run of zeros."""
    flat = np.asarray(mask, bool).ravel(order='F')
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.r_[0, change, flat.size]
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {'size': [int(mask.shape[0]), int(mask.shape[1])], 'counts': [int(c) for c in counts]}


def decode_rle(segmentation: Dict) -> np.ndarray:
    """Boolean ``(H, W)`` mask of a COCO uncompressed RLE (:func:`encode_rle`).

    Raises:
        ValueError: Not an uncompressed RLE, or the runs do not fill the size.
    """
    if not isinstance(segmentation, dict) or not isinstance(segmentation.get('counts'), list):
        raise ValueError('segmentation is not an uncompressed RLE ({"size", "counts": [...]})')
    h, w = (int(v) for v in segmentation['size'])
    counts = np.asarray(segmentation['counts'], np.int64)
    if counts.sum() != h * w or (counts < 0).any():
        raise ValueError(f'RLE runs sum to {int(counts.sum())}, not {h} x {w}')
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape((h, w), order='F')


def make_shapes_image(rng: np.random.Generator,
                      size_range: Tuple[int, int] = (128, 320),
                      max_objects: int = 6) -> Tuple[np.ndarray, List[Dict]]:
    """One image (BGR uint8) and its objects ``[{'bbox': [x, y, w, h], 'category_id': c,
    'area': pixels, 'segmentation': RLE of the visible mask}]``."""
    h = int(rng.integers(size_range[0], size_range[1] + 1))
    w = int(rng.integers(size_range[0], size_range[1] + 1))
    img = _background(rng, h, w)
    img = np.clip(img, 0, 255).astype(np.uint8)
    _distractors(rng, img)
    n = int(rng.integers(1, max_objects + 1))
    objects: List[Dict] = []
    placed: List[Tuple[float, float, float]] = []
    short = min(h, w)
    for _ in range(n):
        for _attempt in range(30):
            r = float(rng.uniform(0.06, 0.2) * short)
            cx = float(rng.uniform(r, w - r))
            cy = float(rng.uniform(r, h - r))
            # partial overlaps allowed, but no object hidden by more than about a third
            if all(math.hypot(cx - px, cy - py) > 0.75 * (r + pr) for px, py, pr in placed):
                break
        else:
            continue
        cls_idx = int(rng.integers(0, len(SHAPES_CLASSES)))
        bg = img[int(cy), int(cx)].astype(np.int32)
        while True:
            color = rng.integers(0, 256, size=3)
            if np.abs(color - bg).sum() > 150:
                break
        mask = np.zeros((h, w), np.uint8)
        _draw_object(img, mask, SHAPES_CLASSES[cls_idx], cx, cy, r, float(rng.uniform(0, 2 *
                                                                                   math.pi)),
                     (int(color[0]), int(color[1]), int(color[2])))
        # Earlier objects that are now covered lose those pixels.
        for obj in objects:
            obj['_mask'][mask > 0] = 0
        objects.append({'category_id': cls_idx, '_mask': mask})
        placed.append((cx, cy, r))
    out = []
    for obj in objects:
        ys, xs = np.nonzero(obj['_mask'])
        if len(xs) < 16:
            continue
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        out.append({
            'bbox': [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            'category_id': obj['category_id'],
            'area': float(len(xs)),
            'segmentation': encode_rle(obj['_mask'] > 0),
        })
    noise = rng.normal(0, 4, size=img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return img, out


def generate_shapes_dataset(out_dir: str,
                            num_images: int = 100,
                            seed: int = 0,
                            size_range: Tuple[int, int] = (128, 320),
                            max_objects: int = 6,
                            ann_file: str = 'annotations.json',
                            img_subdir: str = 'images') -> str:
    """Write ``num_images`` images and a COCO ``annotations.json``; return the annotation path.

    The same ``seed`` always gives the same files.
    """
    rng = np.random.default_rng(seed)
    img_dir = osp.join(out_dir, img_subdir)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    ann_id = 1
    for i in range(num_images):
        img, objs = make_shapes_image(rng, size_range, max_objects)
        name = f'{seed:04d}_{i:05d}.png'
        cv2.imwrite(osp.join(img_dir, name), img)
        images.append({'id': i + 1, 'file_name': name, 'height': img.shape[0],
                       'width': img.shape[1]})
        for obj in objs:
            annotations.append({
                'id': ann_id,
                'image_id': i + 1,
                'category_id': obj['category_id'] + 1,
                'bbox': obj['bbox'],
                'area': obj['area'],
                'segmentation': obj['segmentation'],
                'iscrowd': 0,
            })
            ann_id += 1
    coco = {
        'info': {'description': f'mmattnvis synthetic shapes, seed {seed}'},
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': n} for i, n in enumerate(SHAPES_CLASSES)],
    }
    path = osp.join(out_dir, ann_file)
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path


def shapes_metainfo() -> Dict:
    """``metainfo`` for ``CocoDataset`` on shapes data."""
    return {'classes': SHAPES_CLASSES, 'palette': SHAPES_PALETTE}
