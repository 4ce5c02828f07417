"""Writing figures: the PNG / JPG raster or the PDF / SVG (raster maps, vector boxes and text),
and with ``--save-panels`` every panel on its own next to it."""
import os.path as osp
from typing import List, Optional, Union

from ..render.layout import Panel, Sheet, Style
from ..render.options import FigureOptions
from ..render.vector import encode, panel_names
from ..utils.fileio import write_bytes_atomic


def style_of(options: Optional[FigureOptions]) -> Style:
    """The drawing style (boxes, labels) of the figure options."""
    if options is None:
        return Style()
    return Style(boxes=options.boxes, labels=options.labels)


def write_figure(path: str, figure: Union[Sheet, Panel],
                 options: Optional[FigureOptions] = None,
                 max_size: Optional[int] = None) -> List[str]:
    """Write ``figure`` to ``path`` in the format its extension names (a raster figure at most
    ``max_size`` pixels on its longest side); with ``options.save_panels`` each panel also goes
    to ``<stem>_panelNN_<what><ext>``.

    Returns:
        The written paths, the figure first. Every file is written atomically.
    """
    options = options or FigureOptions()
    style = style_of(options)
    stem, ext = osp.splitext(path)
    fmt = ext.lstrip('.').lower() or 'png'
    data, _ = encode(figure, fmt, style, max_size)
    write_bytes_atomic(path, data)
    written = [path]
    if options.save_panels and isinstance(figure, Sheet):
        for panel, name in zip(figure.panels, panel_names(figure)):
            data, _ = encode(panel, fmt, style)
            write_bytes_atomic(f'{stem}_{name}{ext}', data)
            written.append(f'{stem}_{name}{ext}')
    return written
