"""Feature-map panels: reduce -> align -> normalise -> colourise -> blend -> grid."""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..structures import ImageGeometry, Map2D
from .geometry import align_to_image
from .image import SparseLayer, blend_rgba, heatmap_overlay, put_label, tile


def render_cells(maps: Sequence[Map2D],
                 image_rgb: np.ndarray,
                 geometry: Optional[ImageGeometry] = None,
                 alpha: float = 0.5,
                 colormap: str = 'jet') -> List[np.ndarray]:
    """One heat-map overlay on ``image_rgb`` per map (aligned, normalised, colourised)."""
    h, w = image_rgb.shape[:2]
    return [heatmap_overlay(align_to_image(m.data, geometry, out_shape=(h, w)), image_rgb, alpha,
                            colormap) for m in maps]


def finish_cells(cells: List[np.ndarray],
                 maps: Sequence[Map2D],
                 arrangement: Optional[Sequence[int]] = None,
                 pred_layer=None,
                 label_cells: bool = True) -> np.ndarray:
    """Composite ``pred_layer`` over each cell (in place), label the cells, tile them."""
    layer = None
    if pred_layer is not None:
        layer = pred_layer if isinstance(pred_layer, SparseLayer) else SparseLayer(pred_layer)
    for cell, m in zip(cells, maps):
        if layer is not None:
            blend_rgba(cell, layer, inplace=True)
        if label_cells and len(maps) > 1 and m.label:
            put_label(cell, m.label)
    if len(cells) == 1:
        return cells[0]
    rows, cols = grid_shape(len(cells), arrangement)
    return tile(cells, rows, cols)


def grid_shape(n: int, arrangement: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """``arrangement`` when it holds ``n`` cells; otherwise a near-square grid (never a strip of
    hundreds of cells)."""
    if arrangement is not None and int(arrangement[0]) * int(arrangement[1]) >= n:
        return int(arrangement[0]), int(arrangement[1])
    cols = int(math.ceil(math.sqrt(n)))
    return int(math.ceil(n / cols)), cols


def render_reduced(maps: Sequence[Map2D],
                   image_rgb: np.ndarray,
                   geometry: Optional[ImageGeometry] = None,
                   alpha: float = 0.5,
                   colormap: str = 'jet',
                   arrangement: Optional[Sequence[int]] = None,
                   pred_layer=None,
                   label_cells: bool = True) -> np.ndarray:
    """Render already-reduced maps on ``image_rgb``.

    Args:
        maps: Reduced maps (one map, or the top-k channels).
        image_rgb: The original image (H x W x 3, uint8, RGB).
        geometry: Align through the test pipeline's geometry; ``None`` stretches each map over
            the image (MMEngine's ``draw_featmap`` behaviour).
        alpha: Weight of the heat map in the blend.
        colormap: OpenCV colormap name.
        arrangement: ``(rows, cols)`` grid for several maps (defaults to one row).
        pred_layer: RGBA layer (e.g. predictions) composited over each cell, or its
            :class:`SparseLayer`.
        label_cells: Write each map's label (e.g. ``channel: 17``) when there are several.
    """
    return finish_cells(render_cells(maps, image_rgb, geometry, alpha, colormap), maps,
                        arrangement, pred_layer, label_cells)
