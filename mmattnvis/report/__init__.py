"""The HTML report of a run: a gallery of its images and maps that opens from ``file://``.

``build_report(results_dir_or_records, out_dir)``; on the command line ``mmattnvis report
RESULTS_DIR [-o OUT_DIR]``.
"""
from .builder import build_report
from .maps import colormap_lut, map_layer
from .page import MARKER, atomic_directory

__all__ = ['build_report', 'atomic_directory', 'colormap_lut', 'map_layer', 'MARKER']
