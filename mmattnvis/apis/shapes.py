"""The synthetic shapes detection dataset (``mmattnvis make_shapes``, tests, demos)."""
from typing import Tuple

from ..datasets import generate_shapes_dataset
from ..utils.errors import UserInputError


def make_shapes_dataset(out_dir: str, num_images: int = 1000, seed: int = 0,
                        size_range: Tuple[int, int] = (128, 320), max_objects: int = 6) -> str:
    """Check the sizes and write ``num_images`` images and a COCO ``annotations.json`` under
    ``out_dir``; returns the annotation path (the same ``seed`` always gives the same files).

    Raises:
        UserInputError: ``num_images < 1``, or not ``32 <= size_range[0] <= size_range[1]``.
    """
    min_size, max_size = size_range
    if num_images < 1 or min_size < 32 or max_size < min_size:
        raise UserInputError('need --num-images >= 1 and 32 <= --min-size <= --max-size')
    return generate_shapes_dataset(out_dir, num_images, seed, (min_size, max_size),
                                   max_objects)
