"""The HTML report of a run: a gallery of its images and maps that opens from ``file://``.

``build_report(results_dir_or_records, out_dir)``; on the command line ``mmattnvis report
RESULTS_DIR [-o OUT_DIR]``. The names below are imported on first use (jinja2 and the page
templates cost ~0.1 s; ``errors_page`` and the hooks' label-only runs do not need them).
"""
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .builder import build_report
    from .maps import colormap_lut, map_layer
    from .page import MARKER, atomic_directory

_LAZY = {'build_report': 'builder', 'colormap_lut': 'maps', 'map_layer': 'maps',
         'MARKER': 'page', 'atomic_directory': 'page'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f'.{_LAZY[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['build_report', 'atomic_directory', 'colormap_lut', 'map_layer', 'MARKER']
