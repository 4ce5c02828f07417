"""Where the network input came from: the test pipeline's letterbox / resize / padding.

A feature map of size ``(h, w)`` covers the whole network input ``(H_in, W_in)`` (the batch shape
after the data preprocessor's padding). The original image occupies the *content box* of that
input: top-left aligned for MMDet ``Resize`` + ``Pad``, centred with ``pad_param`` for MMYOLO's
``LetterResize``. :class:`ImageGeometry` stores that box and maps points both ways.
"""
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class ImageGeometry:
    """Geometry of one image in the network input.

    Attributes:
        ori_shape: ``(h, w)`` of the original image.
        input_shape: ``(H_in, W_in)`` of the tensor the network saw (batch shape).
        content_box: ``(x0, y0, x1, y1)`` of the original image inside the input, in input
            pixels (continuous, edge-based coordinates).
    """
    ori_shape: Tuple[int, int]
    input_shape: Tuple[int, int]
    content_box: Tuple[float, float, float, float]

    @classmethod
    def identity(cls, shape: Sequence[int]) -> 'ImageGeometry':
        h, w = int(shape[0]), int(shape[1])
        return cls((h, w), (h, w), (0.0, 0.0, float(w), float(h)))

    @classmethod
    def from_resize_pad(cls, ori_shape: Sequence[int], resized_shape: Sequence[int],
                        input_shape: Sequence[int],
                        offset: Tuple[float, float] = (0.0, 0.0)) -> 'ImageGeometry':
        """An image resized to ``resized_shape`` and placed at ``offset`` (x, y) in an input of
        ``input_shape`` (e.g. torchvision's ``GeneralizedRCNNTransform``: offset 0, padded
        right/bottom)."""
        x0, y0 = float(offset[0]), float(offset[1])
        return cls((int(ori_shape[0]), int(ori_shape[1])),
                   (int(input_shape[0]), int(input_shape[1])),
                   (x0, y0, x0 + float(resized_shape[1]), y0 + float(resized_shape[0])))

    @classmethod
    def from_metainfo(cls, meta: Mapping[str, Any]) -> 'ImageGeometry':
        """Build from a ``DetDataSample.metainfo`` (``ori_shape``, ``img_shape``,
        ``scale_factor``, optional ``pad_param`` and ``batch_input_shape``)."""
        ori_h, ori_w = (int(v) for v in meta['ori_shape'][:2])
        img_h, img_w = (int(v) for v in meta.get('img_shape', meta['ori_shape'])[:2])
        in_h, in_w = (int(v) for v in meta.get('batch_input_shape',
                                               meta.get('pad_shape', (img_h, img_w)))[:2])
        sf = meta.get('scale_factor', None)
        if sf is None:
            sx, sy = img_w / ori_w, img_h / ori_h
        else:
            sf = np.asarray(sf, dtype=np.float64).reshape(-1)
            sx, sy = float(sf[0]), float(sf[1] if sf.size > 1 else sf[0])
        pad = meta.get('pad_param', None)
        if pad is not None:
            top, _bottom, left, _right = (float(v) for v in np.asarray(pad).reshape(-1)[:4])
        else:
            top = left = 0.0
        box = (left, top, left + ori_w * sx, top + ori_h * sy)
        return cls((ori_h, ori_w), (in_h, in_w), box)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able form (see :meth:`from_dict`)."""
        return {'ori_shape': list(self.ori_shape), 'input_shape': list(self.input_shape),
                'content_box': [float(v) for v in self.content_box]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> 'ImageGeometry':
        oh, ow = (int(v) for v in d['ori_shape'])
        ih, iw = (int(v) for v in d['input_shape'])
        x0, y0, x1, y1 = (float(v) for v in d['content_box'])
        return cls((oh, ow), (ih, iw), (x0, y0, x1, y1))

    def image_to_feature_affine(self, feat_shape: Sequence[int],
                                stride: Optional[int] = None) -> np.ndarray:
        """2x3 matrix mapping original-image pixel indices to feature-map pixel indices.

        Pixel centres: index ``i`` has its centre at continuous coordinate ``i + 0.5``.
        Without ``stride`` the map covers the input exactly; with it, cell ``j`` covers input
        pixels ``[stride * j, stride * (j + 1))`` (a strided backbone's grid, which reaches past
        an input side that is not a multiple of the stride).
        """
        fh, fw = int(feat_shape[0]), int(feat_shape[1])
        in_h, in_w = self.input_shape
        if stride:
            in_h, in_w = fh * int(stride), fw * int(stride)
        ori_h, ori_w = self.ori_shape
        x0, y0, x1, y1 = self.content_box
        ax = (x1 - x0) / ori_w * fw / in_w
        ay = (y1 - y0) / ori_h * fh / in_h
        bx = x0 * fw / in_w
        by = y0 * fh / in_h
        return np.array([[ax, 0.0, 0.5 * ax + bx - 0.5], [0.0, ay, 0.5 * ay + by - 0.5]],
                        dtype=np.float64)

    def image_to_input(self, xy: Sequence[float]) -> Tuple[float, float]:
        """An original-image point (continuous pixels) in network-input pixels."""
        ori_h, ori_w = self.ori_shape
        x0, y0, x1, y1 = self.content_box
        return (x0 + xy[0] * (x1 - x0) / ori_w, y0 + xy[1] * (y1 - y0) / ori_h)

    def input_to_image(self, xy: Sequence[float]) -> Tuple[float, float]:
        """A network-input point (continuous pixels) in original-image pixels."""
        ori_h, ori_w = self.ori_shape
        x0, y0, x1, y1 = self.content_box
        return ((xy[0] - x0) * ori_w / (x1 - x0), (xy[1] - y0) * ori_h / (y1 - y0))


def infer_stride(input_shape: Sequence[int], grid_shape: Sequence[int]) -> Optional[int]:
    """The stride ``s`` of a strided (``ceil``-rounding) backbone grid over an input:
    ``ceil(H / s) == h`` and ``ceil(W / s) == w``; powers of two are tried first. ``None`` when
    no integer stride fits (the grid did not come from striding the input)."""
    in_h, in_w = (int(v) for v in input_shape[:2])
    h, w = (int(v) for v in grid_shape[:2])
    if h < 1 or w < 1:
        return None

    def fits(s: int) -> bool:
        return -(-in_h // s) == h and -(-in_w // s) == w

    for k in range(11):
        if fits(2**k):
            return 2**k
    for s in range(1, max(in_h, in_w) + 1):
        if fits(s):
            return s
    return None
