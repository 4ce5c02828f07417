"""Figures as panels: a raster base (maps, points, markers) plus what is drawn on top of it
(boxes, their labels, captions, titles) kept as primitives, so one layout gives the PNG (drawn
with OpenCV) and the PDF / SVG (the raster embedded, boxes and text as vectors, see
:mod:`mmattnvis.render.vector`) with the same label placement.

Every label of a figure has one size (:func:`label_scale` of the panel width) and one format
(:func:`label_text`), and box labels are placed with :func:`~.labels.place_labels` so that none
covers another nor the panel's caption.
"""
import math
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .labels import place_labels

FONT = cv2.FONT_HERSHEY_SIMPLEX
Color = Tuple[int, int, int]
#: ``('rect', x0, y0, x1, y1, color, thickness)`` outline, ``('fill', x0, y0, x1, y1, color)``,
#: ``('text', x, baseline_y, text, scale, color)``; pixel coordinates, ``x1``/``y1`` exclusive.
#: A box label's background is ``('fill', ..., color, 'label')``.
Primitive = tuple

DEFAULT_PALETTE: Tuple[Color, ...] = ((220, 20, 60), (0, 130, 200), (60, 180, 75),
                                      (245, 130, 48), (145, 30, 180), (70, 240, 240),
                                      (240, 50, 230), (210, 245, 60), (0, 128, 128))


def label_text(name: str, score: Optional[float]) -> str:
    """A detection's label, the one format of every figure: ``bird 0.69``."""
    return str(name) if score is None else f'{name} {float(score):.2f}'


def label_scale(width: int) -> float:
    """The OpenCV font scale of every label and caption on a panel ``width`` pixels wide."""
    return max(0.35, min(1.0, width / 640.0 * 0.6))


def text_box(text: str, scale: float) -> Tuple[int, int, int]:
    """``(width, height, baseline)`` of ``text`` at ``scale`` (thickness as drawn)."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, _thick(scale))
    return tw, th, base


def _thick(scale: float) -> int:
    return 1 if scale < 0.8 else 2


def palette_color(label: int, palette: Optional[Sequence] = None) -> Color:
    """The colour of class ``label``: the dataset's palette when it has one."""
    pal = palette if palette else DEFAULT_PALETTE
    c = pal[int(label) % len(pal)]
    return (int(c[0]), int(c[1]), int(c[2]))


@dataclass
class BoxItem:
    """A box ``x1, y1, x2, y2`` (panel pixels), its colour and its label (``''``: none)."""
    box: Any  # Sequence[float] or an array of 4
    color: Color
    text: str = ''


@dataclass
class Style:
    """What is drawn on top of the maps (``--no-boxes``, ``--no-labels``)."""
    boxes: bool = True
    labels: bool = True


@dataclass
class Panel:
    """One panel: ``image`` (RGB) with ``boxes`` repeated in each of ``cells`` (``x, y, w, h``
    sub-rectangles of a top-k grid; default the whole image), a corner ``caption`` per cell and a
    ``title`` strip above. ``extra`` holds further primitives (legends, colour bars)."""
    image: np.ndarray
    boxes: List[BoxItem] = field(default_factory=list)
    caption: str = ''
    title: str = ''
    cells: Optional[List[Tuple[int, int, int, int]]] = None
    cell_captions: Optional[List[str]] = None
    extra: List[Primitive] = field(default_factory=list)

    def title_height(self) -> int:
        if not self.title:
            return 0
        scale, (tw, th, base) = _title_scale(self.title, self.image.shape[1])
        return th + base + 10

    @property
    def size(self) -> Tuple[int, int]:
        """``(width, height)`` of the panel with its title strip."""
        return self.image.shape[1], self.image.shape[0] + self.title_height()

    def primitives(self, style: Style = Style()) -> List[Primitive]:
        """What goes on top of the image (and its title strip), in panel coordinates."""
        out: List[Primitive] = []
        dy = self.title_height()
        if self.title:
            scale, (tw, th, base) = _title_scale(self.title, self.image.shape[1])
            out.append(('text', 4, th + 5, self.title, scale, (0, 0, 0)))
        h, w = self.image.shape[:2]
        cells = self.cells or [(0, 0, w, h)]
        captions = self.cell_captions or [self.caption] * len(cells)
        for (cx, cy, cw, ch), caption in zip(cells, captions):
            scale = label_scale(cw)
            occupied = []
            if caption:
                tw, th, base = text_box(caption, scale)
                r = (2, 2, min(cw - 1, 2 + tw + 4), min(ch - 1, 2 + th + base + 4))
                occupied.append(r)
                out.append(('fill', cx + r[0], dy + cy + r[1], cx + r[2] + 1, dy + cy + r[3] + 1,
                            (0, 0, 0)))
                out.append(('text', cx + 4, dy + cy + 2 + th + 2, caption, scale,
                            (255, 255, 255)))
            if not style.boxes or not self.boxes:
                continue
            for item in self.boxes:
                x1, y1, x2, y2 = (float(v) for v in item.box)
                out.append(('rect', cx + x1, dy + cy + y1, cx + x2, dy + cy + y2, item.color, 2))
            if not style.labels:
                continue
            items = [b for b in self.boxes if b.text]
            sizes = []
            for b in items:
                tw, th, base = text_box(b.text, scale)
                sizes.append((tw + 4, th + base + 4))
            for b, rect in zip(items, place_labels([b.box for b in items], sizes, (ch, cw),
                                                   occupied)):
                x0, y0, x1, y1 = rect
                th = text_box(b.text, scale)[1]
                out.append(('fill', cx + x0, dy + cy + y0, cx + x1, dy + cy + y1, b.color,
                            'label'))
                dark = sum(b.color) / 3 > 140  # dark text on light label colours
                out.append(('text', cx + x0 + 2, dy + cy + y0 + th + 2, b.text, scale,
                            (0, 0, 0) if dark else (255, 255, 255)))
        out.extend((p[0], p[1], p[2] + dy) + tuple(p[3:]) if p[0] == 'text' else
                   (p[0], p[1], p[2] + dy, p[3], p[4] + dy) + tuple(p[5:]) for p in self.extra)
        return out

    def base(self) -> np.ndarray:
        """The raster under the primitives: the title strip (white) over the image."""
        img = np.ascontiguousarray(self.image, np.uint8)
        dy = self.title_height()
        if not dy:
            return img
        return np.concatenate([np.full((dy, img.shape[1], 3), 255, np.uint8), img], 0)

    def render(self, style: Style = Style()) -> np.ndarray:
        """The panel as an RGB image."""
        return draw_primitives(self.base().copy(), self.primitives(style))


def _title_scale(title: str, width: int):
    scale = max(0.4, min(0.9, width / 900.0))
    (tw, th), base = cv2.getTextSize(title, FONT, scale, 1)
    if tw > width - 8:  # shrink to fit the width
        scale *= (width - 8) / tw
        (tw, th), base = cv2.getTextSize(title, FONT, scale, 1)
    return scale, (tw, th, base)


def draw_primitives(canvas: np.ndarray, prims: Sequence[Primitive], dx: int = 0,
                    dy: int = 0) -> np.ndarray:
    """Draw primitives with OpenCV (in place), shifted by ``dx, dy``."""
    for p in prims:
        if p[0] == 'rect':
            _, x0, y0, x1, y1, color, thick = p
            cv2.rectangle(canvas, (int(round(x0)) + dx, int(round(y0)) + dy),
                          (int(round(x1)) + dx, int(round(y1)) + dy),
                          tuple(int(c) for c in color), thick, cv2.LINE_AA)
        elif p[0] == 'fill':
            x0, y0, x1, y1, color = p[1:6]
            cv2.rectangle(canvas, (int(x0) + dx, int(y0) + dy), (int(x1) - 1 + dx,
                                                                  int(y1) - 1 + dy),
                          tuple(int(c) for c in color), -1)
        elif p[0] == 'text':
            _, x, y, text, scale, color = p
            thick = 1 if (scale < 0.8 or color == (0, 0, 0)) else 2
            cv2.putText(canvas, text, (int(x) + dx, int(y) + dy), FONT, scale,
                        tuple(int(c) for c in color), thick, cv2.LINE_AA)
    return canvas


@dataclass
class Sheet:
    """Panels in a grid (``cols`` per row, ``pad`` pixels apart, white), an optional title strip
    above and footer panels (colour bar, legend) below."""
    panels: List[Panel]
    cols: int
    pad: int = 3
    title: str = ''
    footers: List[Panel] = field(default_factory=list)

    def placements(self) -> Tuple[Tuple[int, int], List[Tuple[Panel, int, int]]]:
        """``((width, height), [(panel, x, y)])`` of every panel, title and footers included
        (the title is a panel too)."""
        rows = int(math.ceil(len(self.panels) / max(1, self.cols)))
        cw = max(p.size[0] for p in self.panels)
        ch = max(p.size[1] for p in self.panels)
        width = self.cols * cw + (self.cols - 1) * self.pad
        placed: List[Tuple[Panel, int, int]] = []
        y0 = 0
        if self.title:
            head = Panel(np.zeros((0, width, 3), np.uint8), title=self.title)
            placed.append((head, 0, 0))
            y0 = head.size[1]
        for i, p in enumerate(self.panels):
            r, c = divmod(i, self.cols)
            placed.append((p, c * (cw + self.pad), y0 + r * (ch + self.pad)))
        y = y0 + rows * ch + (rows - 1) * self.pad
        for f in self.footers:
            placed.append((f, 0, y))
            y += f.size[1]
        return (width, y), placed

    def render(self, style: Style = Style()) -> np.ndarray:
        """The whole figure as an RGB image."""
        (w, h), placed = self.placements()
        canvas = np.full((h, w, 3), 255, np.uint8)
        for p, x, y in placed:
            base = p.base()
            canvas[y:y + base.shape[0], x:x + base.shape[1]] = base
            draw_primitives(canvas, p.primitives(style), x, y)
        return canvas


def colorbar_panel(width: int, colormap: str, label: str = 'each map scaled to its own range'
                   ) -> Panel:
    """A horizontal colour bar (``low`` .. ``high`` of the colormap) with its caption."""
    from .image import colorize
    scale = label_scale(min(width, 640))
    _, th, base = text_box('low', scale)
    margin, bar_h = 8, max(10, th + 4)
    text_h = th + base + 8
    img = np.full((bar_h + text_h + 2 * margin, width, 3), 255, np.uint8)
    inner = max(1, width - 2 * margin)
    ramp = np.tile(np.linspace(0, 255, inner).astype(np.uint8)[None], (bar_h, 1))
    img[margin:margin + bar_h, margin:margin + inner] = colorize(ramp, colormap)
    cv2.rectangle(img, (margin - 1, margin - 1), (margin + inner, margin + bar_h), (0, 0, 0), 1)
    y = margin + bar_h + th + 6
    hw = text_box('high', scale)[0]
    lw = text_box(label, scale)[0]
    prims = [('text', margin, y, 'low', scale, (0, 0, 0)),
             ('text', margin + inner - hw, y, 'high', scale, (0, 0, 0)),
             ('text', margin + max(0, (inner - lw) // 2), y, label, scale, (0, 0, 0))]
    return Panel(img, extra=prims)


def points_legend_panel(width: int, n_levels: int, colors: Sequence[Color]) -> Panel:
    """The legend of sampling-point figures: a dot per feature level (colour) and two dot sizes
    (area = attention weight)."""
    scale = label_scale(min(width, 640))
    _, th, base = text_box('L0', scale)
    h = th + base + 16
    img = np.full((h, width, 3), 255, np.uint8)
    prims: List[Primitive] = []
    x, cy = 8, h // 2
    r = max(3, th // 2)
    for level in range(n_levels):
        cv2.circle(img, (x + r, cy), r, colors[level % len(colors)], -1, cv2.LINE_AA)
        cv2.circle(img, (x + r, cy), r, (0, 0, 0), 1, cv2.LINE_AA)
        prims.append(('text', x + 2 * r + 4, cy + th // 2, f'level {level}', scale, (0, 0, 0)))
        x += 2 * r + 8 + text_box(f'level {level}', scale)[0] + 12
    for rad, word in ((max(2, r // 2), 'low weight'), (r + 3, 'high weight')):
        cv2.circle(img, (x + rad, cy), rad, (128, 128, 128), -1, cv2.LINE_AA)
        cv2.circle(img, (x + rad, cy), rad, (0, 0, 0), 1, cv2.LINE_AA)
        prims.append(('text', x + 2 * rad + 4, cy + th // 2, word, scale, (0, 0, 0)))
        x += 2 * rad + 8 + text_box(word, scale)[0] + 12
    prims.append(('text', x, cy + th // 2, '+ reference point', scale, (0, 0, 0)))
    return Panel(img, extra=prims)
