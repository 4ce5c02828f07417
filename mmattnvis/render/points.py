"""Weighted sampling points drawn on an image (deformable attention)."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

# one colour per feature level (RGB), finest first
LEVEL_COLORS = [(255, 60, 60), (255, 200, 0), (60, 220, 60), (60, 160, 255), (200, 80, 255)]


def draw_points(image_rgb: np.ndarray,
                points: np.ndarray,
                reference: Optional[Tuple[float, float]] = None,
                max_radius: Optional[float] = None,
                colors: Sequence[Tuple[int, int, int]] = LEVEL_COLORS) -> np.ndarray:
    """Draw ``(N, >=4)`` points ``x, y, weight, level`` as filled circles whose area grows with
    the weight (colour = level), strongest on top; ``reference`` as a marker
    (:func:`draw_marker`)."""
    out = image_rgb.copy()
    if len(points):
        h, w = out.shape[:2]
        max_radius = max_radius or max(3.0, min(h, w) / 40)
        wmax = float(points[:, 2].max()) or 1.0
        overlay = out.copy()
        for x, y, wt, level in sorted(points[:, :4].tolist(), key=lambda p: p[2]):
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            r = max(1, int(round(max_radius * np.sqrt(max(wt, 0) / wmax))))
            color = colors[int(level) % len(colors)]
            cv2.circle(overlay, (int(round(x)), int(round(y))), r, color, -1, cv2.LINE_AA)
            cv2.circle(overlay, (int(round(x)), int(round(y))), r, (0, 0, 0), 1, cv2.LINE_AA)
        out = cv2.addWeighted(overlay, 0.85, out, 0.15, 0)
    if reference is not None:
        out = draw_marker(out, reference)
    return out


def draw_marker(image_rgb: np.ndarray,
                xy: Tuple[float, float],
                box: Optional[Tuple[float, float, float, float]] = None,
                size: Optional[int] = None,
                color: Tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """A thin "+" at ``xy`` with an open centre, so the pixels at the point (a small object)
    stay visible: four ``color`` arms outlined in black, sized with the image (draw it at the
    output scale). ``box`` (``x0, y0, x1, y1``, e.g. the token cell the point falls in) is
    outlined the same way."""
    out = np.ascontiguousarray(image_rgb).copy()
    h, w = out.shape[:2]
    size = size or max(11, int(round(min(h, w) / 20)))
    if box is not None and all(np.isfinite(box)):
        p0 = (int(np.floor(box[0])), int(np.floor(box[1])))
        p1 = (int(np.ceil(box[2])) - 1, int(np.ceil(box[3])) - 1)
        cv2.rectangle(out, p0, p1, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.rectangle(out, p0, p1, color, 1, cv2.LINE_AA)
    x, y = (int(round(v)) for v in xy)
    gap = max(3, size // 4) + 2  # the outline's round caps stay out of the open centre
    arm = max(gap + 3, size // 2 + 2)
    arms = [((x - arm, y), (x - gap, y)), ((x + gap, y), (x + arm, y)),
            ((x, y - arm), (x, y - gap)), ((x, y + gap), (x, y + arm))]
    for p0, p1 in arms:
        cv2.line(out, p0, p1, (0, 0, 0), 3, cv2.LINE_8)
    for p0, p1 in arms:
        cv2.line(out, p0, p1, color, 1, cv2.LINE_8)
    return out
