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
    the weight (colour = level), strongest on top; ``reference`` as a white cross."""
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
        x, y = (int(round(v)) for v in reference)
        cv2.drawMarker(out, (x, y), (255, 255, 255), cv2.MARKER_CROSS, 14, 2, cv2.LINE_AA)
        cv2.drawMarker(out, (x, y), (0, 0, 0), cv2.MARKER_CROSS, 14, 1, cv2.LINE_AA)
    return out
