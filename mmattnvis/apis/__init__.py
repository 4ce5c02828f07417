"""APIs: load a model safely, run its test pipeline, keep geometry; the tasks' Runs.

Every task is ``Run(model, options)`` with a validated options dataclass and
``run_batch(inputs, data_samples)`` / ``run_images(images_bgr, paths)`` -> one
:class:`~mmattnvis.structures.ResultRecord` per image (see ``docs/runner_api.md``). The Runs are
imported on first use (``from mmattnvis.apis import CAMRun``), so ``import mmattnvis.apis``
stays light.
"""
import importlib
from typing import Any

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

#: Exported name -> the module of ``mmattnvis.apis`` that defines it (imported on first use).
_LAZY = {
    'Run': 'run', 'RunOptions': 'run',
    'FeatMapRun': 'featmap_runner', 'FeatMapOptions': 'featmap_runner',
    'AttentionRun': 'attention', 'AttentionOptions': 'attention_runner',
    'CAMRun': 'cam', 'CAMOptions': 'cam',
    'AblationRun': 'ablation', 'AblationOptions': 'ablation',
    'FaithfulnessRun': 'faithfulness_runner', 'FaithfulnessOptions': 'faithfulness_runner',
    'ErrorRun': 'errors', 'ErrorOptions': 'errors',
    'build_run': 'tasks', 'task_options': 'tasks', 'task_names': 'tasks',
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f'.{_LAZY[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [*_LAZY,
    'UnreadableImages', 'batched', 'bgr_to_rgb', 'build_test_pipeline', 'collect_images',
    'geometries', 'load_image', 'prepare_batch', 'run_test_step', 'available_layers',
    'init_model', 'load_config', 'resolve_config_path', 'strip_pretrained', 'shipped_model'
]
