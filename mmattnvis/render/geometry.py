"""Align maps with the original image: undo the test pipeline's letterbox / resize / padding.

A feature map of size ``(h, w)`` covers the whole network input ``(H_in, W_in)`` (the batch shape
after the data preprocessor's padding). The original image occupies the *content box* of that
input: top-left aligned for MMDet ``Resize`` + ``Pad``, centred with ``pad_param`` for MMYOLO's
``LetterResize``. :class:`ImageGeometry` stores that box, and :func:`align_to_image` samples a map
on the original image's pixel grid (one bilinear interpolation, padded borders cropped).
"""
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..structures.boxes import BoxLike
from ..structures.geometry import ImageGeometry, infer_stride
from ..structures.maps import Map2D


def box_slices(box: BoxLike, shape: Sequence[int]) -> Tuple[slice, slice]:
    """``(rows, cols)`` slices of the pixels an ``x1, y1, x2, y2`` box covers in an image of
    ``shape`` (outward rounding, clipped; empty slices for a box outside the image)."""
    h, w = int(shape[0]), int(shape[1])
    x1, y1, x2, y2 = (float(v) for v in box)
    c0, r0 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    c1, r1 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def align_to_image(fmap: Union[np.ndarray, Map2D],
                   geometry: Optional[ImageGeometry],
                   out_shape: Optional[Sequence[int]] = None,
                   stride: Union[int, str, None] = None) -> np.ndarray:
    """Sample a 2-D (or H x W x 3) map on the original image's pixel grid.

    Args:
        fmap: Map on the feature grid: an array or a :class:`Map2D` (as the methods return;
            its ``data`` is aligned).
        geometry: How the original image sits in the network input. ``None`` stretches the map
            over ``out_shape`` (MMEngine's behaviour, i.e. alignment off).
        out_shape: ``(h, w)`` of the result; defaults to ``geometry.ori_shape``.
        stride: The map is a strided grid: cell ``j`` covers input pixels
            ``[stride * j, stride * (j + 1))`` (see :meth:`ImageGeometry.image_to_feature_affine`);
            ``'auto'`` infers it with :func:`infer_stride` (no stride when none fits).
    """
    if isinstance(fmap, Map2D):
        fmap = fmap.data
    fmap = np.ascontiguousarray(fmap, dtype=np.float32)
    if geometry is None:
        if out_shape is None:
            raise ValueError('out_shape is needed when geometry is None')
        h, w = int(out_shape[0]), int(out_shape[1])
        if fmap.shape[:2] == (h, w):
            return fmap
        return cv2.resize(fmap, (w, h), interpolation=cv2.INTER_LINEAR)
    h, w = (int(v) for v in (out_shape or geometry.ori_shape)[:2])
    if stride == 'auto':
        stride = infer_stride(geometry.input_shape, fmap.shape[:2])
    matrix = geometry.image_to_feature_affine(fmap.shape[:2], stride)  # type: ignore[arg-type]
    if out_shape is not None and tuple(out_shape[:2]) != tuple(geometry.ori_shape):
        # Sample a resized original image: scale the destination grid first.
        sy, sx = geometry.ori_shape[0] / h, geometry.ori_shape[1] / w
        m = matrix.copy()
        m[0, 2] += m[0, 0] * (0.5 * sx - 0.5)
        m[1, 2] += m[1, 1] * (0.5 * sy - 0.5)
        m[0, 0] *= sx
        m[1, 1] *= sy
        matrix = m
    return cv2.warpAffine(
        fmap,
        matrix, (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE)
