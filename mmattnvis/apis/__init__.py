"""APIs: load a model safely, run its test pipeline, keep geometry."""
from ..utils.package_data import shipped_model
from .inference import (
    UnreadableImages,
    batched,
    bgr_to_rgb,
    build_test_pipeline,
    collect_images,
    geometries,
    load_image,
    prepare_batch,
    run_test_step,
)
from .model import available_layers, init_model, load_config, resolve_config_path, strip_pretrained

__all__ = [
    'UnreadableImages', 'batched', 'bgr_to_rgb', 'build_test_pipeline', 'collect_images',
    'geometries', 'load_image', 'prepare_batch', 'run_test_step', 'available_layers',
    'init_model', 'load_config', 'resolve_config_path', 'strip_pretrained', 'shipped_model'
]
