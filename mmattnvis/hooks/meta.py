"""What a hook knows of its run besides the model: the dataset's classes and the run's name."""
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.model import is_model_wrapper


def loop_dataset_meta(runner, mode: str) -> Optional[Dict[str, Any]]:
    """The ``metainfo`` (``classes``...) of the dataset the hook's loop runs on.

    The runner's model carries no ``dataset_meta`` (the CLIs' models do, from the checkpoint or
    config); MMEngine's loops hand the dataset's metainfo to the evaluator and visualizer only.
    ``mode``: ``'test'`` reads the test loop's dataset, anything else the validation loop's (the
    fixed samples of training come from it); then the runner visualizer's and the model's meta.
    """
    loop = getattr(runner, '_test_loop' if mode == 'test' else '_val_loop', None)
    dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
    meta = getattr(dataset, 'metainfo', None)
    if meta and meta.get('classes'):
        return dict(meta)
    meta = getattr(getattr(runner, 'visualizer', None), 'dataset_meta', None)
    if meta and meta.get('classes'):
        return dict(meta)
    model = getattr(runner, 'model', None)
    model = model.module if model is not None and is_model_wrapper(model) else model
    return getattr(model, 'dataset_meta', None)


def sink_info(hook, runner, loop: str) -> Dict[str, Any]:
    """What a hook's saved results (and its report's title) say of the run: the hook, the loop
    (``val``/``test``/``train``), the config's name and, for attention, the mode."""
    info = {'hook': type(hook).__name__, 'loop': loop, 'config': config_name(runner)}
    mode = getattr(getattr(hook, 'options', None), 'mode', None)
    if mode is not None:
        info['mode'] = mode
    return info


def config_name(runner) -> Optional[str]:
    """The name of the runner's config file without extension (``None``: built in code)."""
    filename = getattr(getattr(runner, 'cfg', None), 'filename', None)
    return osp.splitext(osp.basename(filename))[0] if filename else None
