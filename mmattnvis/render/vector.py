"""PDF / SVG of a :class:`~.layout.Sheet` or :class:`~.layout.Panel` with matplotlib: each
panel's raster base is embedded as an image, boxes, labels, captions and titles are vector
(text stays text: selectable in the PDF, ``<text>`` elements in the SVG). One pixel of the PNG
is one point-sized unit of the page (100 dpi), and label positions are those of the PNG."""
import io
from typing import List, Optional, Tuple, Union

import numpy as np

from .layout import FONT, Panel, Sheet, Style

FORMATS = ('png', 'pdf', 'svg')
_DPI = 100.0


def _font_px(scale: float) -> float:
    """The matplotlib font size (px) whose cap height matches OpenCV's ``scale``."""
    import cv2
    (_, th), _ = cv2.getTextSize('H', FONT, scale, 1)
    return th / 0.72


def vector_bytes(fig_or_panel: Union[Sheet, Panel], fmt: str, style: Style = Style()) -> bytes:
    """The figure as ``pdf`` or ``svg`` bytes."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    if isinstance(fig_or_panel, Sheet):
        (w, h), placed = fig_or_panel.placements()
    else:
        w, h = fig_or_panel.size
        placed = [(fig_or_panel, 0, 0)]
    fig = Figure(figsize=(w / _DPI, h / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis('off')
    label_id = 0
    for panel, x, y in placed:
        base = panel.base()
        if base.size:
            ax.imshow(base, extent=(x, x + base.shape[1], y + base.shape[0], y),
                      interpolation='nearest', zorder=0)
        for p in panel.primitives(style):
            if p[0] in ('rect', 'fill'):
                x0, y0, x1, y1 = (float(v) for v in p[1:5])
                color = tuple(c / 255 for c in p[5])
                if p[0] == 'rect':
                    patch = Rectangle((x + x0, y + y0), x1 - x0, y1 - y0, fill=False,
                                      edgecolor=color, linewidth=p[6] * 72 / _DPI, zorder=2)
                else:
                    patch = Rectangle((x + x0, y + y0), x1 - x0, y1 - y0, facecolor=color,
                                      edgecolor='none', zorder=3)
                    if p[6:7] == ('label', ):  # box labels can be found in the SVG
                        patch.set_gid(f'label{label_id}')
                        label_id += 1
                ax.add_patch(patch)
            else:
                _, tx, ty, text, scale, color = p
                ax.text(x + tx, y + ty, text, color=tuple(c / 255 for c in color),
                        fontsize=_font_px(scale) * 72 / _DPI, va='baseline', ha='left',
                        family='DejaVu Sans', zorder=4)
    buf = io.BytesIO()
    with matplotlib.rc_context({'svg.fonttype': 'none', 'pdf.fonttype': 3,
                                'pdf.compression': 6}):
        fig.savefig(buf, format=fmt, dpi=_DPI)
    return buf.getvalue()


def encode(fig_or_panel: Union[Sheet, Panel], fmt: str, style: Style = Style(),
           max_size: Optional[int] = None) -> Tuple[bytes, str]:
    """``(bytes, extension)`` of the figure in ``fmt`` (``png``, ``jpg``, ``pdf``, ``svg``);
    a raster one is scaled down to at most ``max_size`` pixels on its longest side."""
    fmt = fmt.lower().lstrip('.')
    if fmt in ('pdf', 'svg'):
        return vector_bytes(fig_or_panel, fmt, style), f'.{fmt}'
    import cv2
    rgb = fig_or_panel.render(style)
    h, w = rgb.shape[:2]
    if max_size is not None and max(h, w) > max_size:
        scale = max_size / max(h, w)
        size = (min(max_size, max(1, int(w * scale))), min(max_size, max(1, int(h * scale))))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(f'.{fmt}', np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f'cannot encode a figure as {fmt}')
    return buf.tobytes(), f'.{fmt}'


def panel_names(sheet: Sheet) -> List[str]:
    """File-name-safe names of a sheet's panels (``panel00_<title or caption>``)."""
    import re
    out = []
    for i, p in enumerate(sheet.panels):
        what = p.title or p.caption or ''
        what = re.sub(r'[^A-Za-z0-9.+-]+', '_', what).strip('_')[:40]
        out.append(f'panel{i:02d}' + (f'_{what}' if what else ''))
    return out
