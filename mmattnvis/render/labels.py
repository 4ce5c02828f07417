"""Boxes with labels that never cover each other, drawn at the output scale."""
from typing import List, Sequence, Tuple

import cv2
import numpy as np

Rect = Tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(boxes: Sequence[Sequence[float]], sizes: Sequence[Tuple[int, int]],
                 shape: Sequence[int], occupied: Sequence[Rect] = ()) -> List[Rect]:
    """Rectangles for labels of ``(w, h)`` pixels next to each box, none overlapping another
    (nor ``occupied``, e.g. a panel title).

    Each label goes to the first free spot of: above the box's top-left corner, inside it below
    that corner, below the box, then stacked downwards from above the box in label-height steps;
    labels stay inside the image when they fit. Boxes are placed in the given order (pass the
    highest scores first).
    """
    img_h, img_w = int(shape[0]), int(shape[1])
    placed: List[Rect] = []
    taken = list(occupied)
    for box, (w, h) in zip(boxes, sizes):
        x = int(np.clip(np.floor(box[0]), 0, max(0, img_w - w)))
        top, bottom = int(np.floor(box[1])), int(np.ceil(box[3]))
        candidates = [top - h, top, bottom]
        candidates += [top - h + k * h for k in range(2, img_h // max(h, 1) + 2)]
        candidates += [top - h - k * h for k in range(1, img_h // max(h, 1) + 1)]
        rect = None
        for y in candidates:
            y = int(np.clip(y, 0, max(0, img_h - h)))
            r = (x, y, x + w, y + h)
            if not any(_overlaps(r, t) for t in taken):
                rect = r
                break
        if rect is None:  # no free row above or below: the free spot nearest the corner
            rect = _nearest_free((x, top - h), (w, h), (img_h, img_w), taken)
        placed.append(rect)
        taken.append(rect)
    return placed


def _nearest_free(corner: Tuple[int, int], size: Tuple[int, int], shape: Tuple[int, int],
                  taken: Sequence[Rect]) -> Rect:
    w, h = size
    img_h, img_w = shape
    best, best_d = None, None
    for y in range(0, max(1, img_h - h + 1), max(1, h // 2)):
        for x in range(0, max(1, img_w - w + 1), max(1, w // 4)):
            r = (x, y, x + w, y + h)
            d = (x - corner[0])**2 + (y - corner[1])**2
            if (best_d is None or d < best_d) and not any(_overlaps(r, t) for t in taken):
                best, best_d = r, d
    if best is None:  # the image is full of labels: keep it next to its box
        x = int(np.clip(corner[0], 0, max(0, img_w - w)))
        y = int(np.clip(corner[1], 0, max(0, img_h - h)))
        best = (x, y, x + w, y + h)
    return best


def draw_labelled_boxes(image_rgb: np.ndarray, boxes: Sequence[Sequence[float]],
                        texts: Sequence[str], colors: Sequence[Tuple[int, int, int]],
                        occupied: Sequence[Rect] = (), scale: float = 0.4) -> np.ndarray:
    """Boxes (``x1, y1, x2, y2`` in this image's pixels) and their labels, placed with
    :func:`place_labels` so that overlapping boxes keep readable labels."""
    out = np.ascontiguousarray(image_rgb).copy()
    thick = 1
    sizes, th_of = [], {}
    for text in texts:
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        sizes.append((tw + 4, th + base + 4))
        th_of[text] = th
    for box, color in zip(boxes, colors):
        p0 = (int(round(box[0])), int(round(box[1])))
        p1 = (int(round(box[2])), int(round(box[3])))
        cv2.rectangle(out, p0, p1, tuple(int(c) for c in color), 2, cv2.LINE_AA)
    for rect, text, color in zip(place_labels(boxes, sizes, out.shape, occupied), texts, colors):
        x0, y0, x1, y1 = rect
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), tuple(int(c) for c in color), -1)
        dark = sum(color) / 3 > 140  # dark text on light label colours
        cv2.putText(out, text, (x0 + 2, y0 + th_of[text] + 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0) if dark else (255, 255, 255), thick, cv2.LINE_AA)
    return out
