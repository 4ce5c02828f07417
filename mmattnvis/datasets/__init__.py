"""Synthetic data the tests, demos and shipped models use."""
from .shapes import (
    SHAPES_CLASSES,
    SHAPES_PALETTE,
    decode_rle,
    encode_rle,
    generate_shapes_dataset,
    make_shapes_image,
    shapes_metainfo,
)
from .skip_unreadable import (
    SkipUnreadableImages,
    skip_unreadable_images,
    skipped_images,
    unreadable_image,
)

__all__ = [
    'SHAPES_CLASSES', 'SHAPES_PALETTE', 'decode_rle', 'encode_rle', 'generate_shapes_dataset',
    'make_shapes_image',
    'shapes_metainfo', 'SkipUnreadableImages', 'skip_unreadable_images',
    'skipped_images', 'unreadable_image'
]
