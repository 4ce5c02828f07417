"""Render: pure functions from arrays to images."""
from .featmap import render_reduced
from .geometry import ImageGeometry, align_to_image
from .image import (
    add_title,
    auto_arrange,
    blend_rgba,
    colorize,
    colormap_names,
    composite_rgba,
    heatmap_overlay,
    normalize_to_uint8,
    overlay,
    put_label,
    tile,
)

__all__ = [
    'render_reduced', 'ImageGeometry', 'align_to_image', 'add_title',
    'auto_arrange', 'colorize', 'colormap_names', 'heatmap_overlay', 'normalize_to_uint8',
    'overlay', 'put_label', 'tile', 'blend_rgba', 'composite_rgba'
]
