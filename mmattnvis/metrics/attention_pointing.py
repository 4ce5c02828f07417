"""Does a query look at its own object? The pointing game of an attention map against the
query's predicted box (the model-running evaluation is
:func:`mmattnvis.apis.attention_pointing.cross_attention_pointing`)."""
from typing import Optional

import numpy as np

from ..render.geometry import align_to_image
from ..structures.boxes import BoxLike
from ..structures.geometry import ImageGeometry
from .faithfulness import pointing_game


def attention_pointing(attention: np.ndarray, geometry: Optional[ImageGeometry],
                       box: BoxLike) -> bool:
    """Whether ``attention`` (a map on the feature / key grid) peaks inside ``box`` once it is
    aligned with the original image (:func:`~mmattnvis.render.geometry.align_to_image`)."""
    return pointing_game(align_to_image(np.asarray(attention, np.float32), geometry), box)


__all__ = ['attention_pointing']
