"""Pure functions from arrays to RGB uint8 images (numpy / OpenCV only)."""
import math
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

_COLORMAPS = {
    name[len('COLORMAP_'):].lower(): getattr(cv2, name)
    for name in dir(cv2) if name.startswith('COLORMAP_')
}


def colormap_names() -> Tuple[str, ...]:
    """OpenCV colormap names accepted by :func:`colorize` (``jet``, ``viridis``, ...)."""
    return tuple(sorted(_COLORMAPS))


def colormap_code(name: str) -> int:
    key = str(name).lower()
    if key not in _COLORMAPS:
        raise ValueError(f"unknown colormap '{name}'; choose from: {', '.join(colormap_names())}")
    return _COLORMAPS[key]


def normalize_to_uint8(fmap: np.ndarray) -> np.ndarray:
    """Min-max normalise to 0..255 and truncate to uint8 (MMEngine's convention).

    A constant map becomes all zeros.
    """
    fmap = np.asarray(fmap, dtype=np.float32)
    # OpenCV's stubs want an output array; None makes it allocate one
    out = cv2.normalize(fmap, None, 0, 255, cv2.NORM_MINMAX)  # type: ignore[call-overload]
    return np.asarray(out, dtype=np.uint8)


def colorize(fmap_u8: np.ndarray, colormap: str = 'jet') -> np.ndarray:
    """Apply an OpenCV colormap to a uint8 map, returning RGB. 3-channel maps pass through."""
    if fmap_u8.ndim == 3 and fmap_u8.shape[2] == 3:
        return cv2.applyColorMap(fmap_u8, colormap_code(colormap))[..., ::-1].copy()
    heat = cv2.applyColorMap(fmap_u8, colormap_code(colormap))
    return cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)


def overlay(image_rgb: Optional[np.ndarray], heat_rgb: np.ndarray,
            alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) * image + alpha * heat`` as ``cv2.addWeighted`` rounds it."""
    if image_rgb is None:
        return heat_rgb
    if image_rgb.ndim == 2:
        image_rgb = cv2.cvtColor(image_rgb, cv2.COLOR_GRAY2RGB)
    if image_rgb.shape[:2] != heat_rgb.shape[:2]:
        raise ValueError(f'image {image_rgb.shape[:2]} and heat map {heat_rgb.shape[:2]} differ')
    return cv2.addWeighted(image_rgb, 1 - alpha, heat_rgb, alpha, 0)


def heatmap_overlay(fmap: np.ndarray,
                    image_rgb: Optional[np.ndarray],
                    alpha: float = 0.5,
                    colormap: str = 'jet') -> np.ndarray:
    """Normalise, colourise and blend one map that already has the image's size."""
    return overlay(image_rgb, colorize(normalize_to_uint8(fmap), colormap), alpha)


def put_label(image: np.ndarray, text: str, org: Tuple[int, int] = (2, 2),
              scale: Optional[float] = None) -> np.ndarray:
    """Draw ``text`` with a dark background box at the top-left corner (in place)."""
    if not text:
        return image
    h, w = image.shape[:2]
    scale = scale or max(0.35, min(1.0, w / 640.0 * 0.6))
    thick = 1 if scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = org
    cv2.rectangle(image, (x, y), (min(w - 1, x + tw + 4), min(h - 1, y + th + base + 4)),
                  (0, 0, 0), -1)
    cv2.putText(image, text, (x + 2, y + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thick, cv2.LINE_AA)
    return image


def tile(images: Sequence[np.ndarray],
         rows: int,
         cols: int,
         pad: int = 0,
         fill: int = 255) -> np.ndarray:
    """Place equally-sized images in a ``rows x cols`` grid (empty cells are ``fill``)."""
    if not images:
        raise ValueError('nothing to tile')
    h, w = images[0].shape[:2]
    c = images[0].shape[2] if images[0].ndim == 3 else 1
    canvas = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), fill,
                     dtype=np.uint8)
    for i, img in enumerate(images[:rows * cols]):
        r, q = divmod(i, cols)
        y, x = r * (h + pad), q * (w + pad)
        canvas[y:y + h, x:x + w] = img.reshape(h, w, c)
    return canvas if c > 1 else canvas[..., 0]


def auto_arrange(images: Sequence[np.ndarray], pad: int = 4, fill: int = 255) -> np.ndarray:
    """Arrange panels of possibly different sizes in a near-square grid (row-major)."""
    n = len(images)
    if n == 0:
        raise ValueError('nothing to arrange')
    if n == 1:
        return images[0]
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    padded = []
    for im in images:
        cell = np.full((h, w, 3), fill, dtype=np.uint8)
        cell[:im.shape[0], :im.shape[1]] = im
        padded.append(cell)
    return tile(padded, rows, cols, pad=pad, fill=fill)


def add_title(image: np.ndarray, title: str, height: int = 0) -> np.ndarray:
    """A white strip with ``title`` above ``image``."""
    if not title:
        return image
    w = image.shape[1]
    scale = max(0.4, min(0.9, w / 900.0))
    (tw, th), base = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if tw > w - 8:  # shrink to fit the width
        scale *= (w - 8) / tw
        (tw, th), base = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    height = height or th + base + 10
    strip = np.full((height, w, 3), 255, dtype=np.uint8)
    cv2.putText(strip, title, (4, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


class SparseLayer:
    """The non-transparent pixels of a straight-alpha RGBA layer, found once.

    A prediction layer is composited over every panel of an image; finding its covered pixels
    (boxes and labels are a small part of the image) and their alpha once makes each blend a
    gather and a scatter.
    """

    def __init__(self, layer_rgba: np.ndarray) -> None:
        self.shape = layer_rgba.shape[:2]
        self.idx = np.flatnonzero(layer_rgba[..., 3])
        px = layer_rgba.reshape(-1, 4)[self.idx]
        self.alpha = px[:, 3:4].astype(np.float32) * (1.0 / 255.0)
        self.rgb = px[:, :3].astype(np.float32) * self.alpha + 0.5


def blend_rgba(base_rgb: np.ndarray, layer_rgba, inplace: bool = False) -> np.ndarray:
    """Composite a straight-alpha RGBA layer over an RGB image ("over" operator).

    Args:
        base_rgb: ``(H, W, 3)`` uint8.
        layer_rgba: ``(H, W, 4)`` uint8, or a :class:`SparseLayer` of one (to reuse it).
        inplace: Write into ``base_rgb`` instead of a copy.

    Only the layer's non-transparent pixels are touched, through flat indices rather than a
    full-size float alpha and boolean masks.
    """
    layer = layer_rgba if isinstance(layer_rgba, SparseLayer) else SparseLayer(layer_rgba)
    if tuple(layer.shape) != tuple(base_rgb.shape[:2]):
        raise ValueError(f'layer of {tuple(layer.shape)} over an image of '
                         f'{tuple(base_rgb.shape[:2])}')
    out = base_rgb if inplace else base_rgb.copy()
    if layer.idx.size:
        flat_out = out.reshape(-1, 3)
        mixed = layer.rgb + flat_out[layer.idx] * (1 - layer.alpha)
        flat_out[layer.idx] = np.clip(mixed, 0, 255).astype(np.uint8)
    return out


def composite_rgba(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """``top`` over ``bottom``, both straight-alpha RGBA uint8."""
    at = top[..., 3:4].astype(np.float32) / 255.0
    ab = bottom[..., 3:4].astype(np.float32) / 255.0
    a = at + ab * (1 - at)
    rgb = (top[..., :3] * at + bottom[..., :3] * ab * (1 - at)) / np.maximum(a, 1e-6)
    return np.concatenate([np.clip(rgb + 0.5, 0, 255), np.clip(a * 255 + 0.5, 0, 255)],
                          axis=2).astype(np.uint8)
