"""MMDet's ``DetLocalVisualizer`` drawing on a transparent layer.

:class:`mmattnvis.visualization.FeatMapVisualizer` draws predictions once per image as an RGBA
layer and composites it onto the image and every panel ("layer mode"). It calls MMDet's private
``DetLocalVisualizer._draw_instances`` (through :func:`draw_instances`) and overrides MMEngine's
``Visualizer.set_image`` / ``get_image`` so that the drawing calls run on a transparent canvas:
it relies on ``_draw_instances`` drawing between one ``set_image`` and one ``get_image``, and on
the attributes ``set_image`` sets (``_image``, ``width``, ``height``, ``_default_font_size``,
``fig_save``, ``ax_save``, ``fig_save_canvas``, ``dpi``).
"""
from typing import Any, Optional, Sequence

import numpy as np

#: mmdet versions this code was written and tested for.
TESTED_VERSIONS = ('3.3.0', )
#: (qualified name, sha1 of ``inspect.getsource``) of what it relies on.
FINGERPRINTS = {
    'mmdet.visualization.local_visualizer.DetLocalVisualizer._draw_instances':
    'fe2c76f22aab960727741c79fd21c243afc44de1',
    'mmengine.visualization.visualizer.Visualizer.set_image':
    '8df02313036cab14eb65f290044a35abacedafcf',
    'mmengine.visualization.visualizer.Visualizer.get_image':
    '0badb2e0b3812f3d46fa2b6b1442f9f83ac0fc1e',
}


def draw_instances(visualizer: Any, image: np.ndarray, instances: Any,
                   classes: Optional[Sequence[str]], palette: Any) -> np.ndarray:
    """``DetLocalVisualizer._draw_instances``: ``instances`` (boxes, labels, masks) drawn on
    ``image`` and read back with ``visualizer.get_image()``."""
    return visualizer._draw_instances(image, instances, classes, palette)
