"""One config end to end: build, forward, check, retried a few ways before it counts."""
import copy
import os.path as osp
import time
import traceback
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import numpy as np

from ..utils.errors import UserInputError
from .classify import NotADetector, classify_exception, one_line
from .config_edits import check_no_external_inputs, lighten_test_cfg, shrink_test_pipeline
from .discovery import ConfigEntry, Record, locate_config
from .forward import build_detector, forward_and_check, synthetic_image
from .sandbox import no_downloads

if TYPE_CHECKING:
    import torch.nn as nn


def check_config(config_path: str, img_size: int = 128, log_traceback: bool = False,
                 panel_dir: Optional[str] = None) -> Record:
    """Check one config end to end and return its record.

    Builds the model on CPU with random weights (``Pretrained`` inits stripped, downloads
    refused), runs one test-mode forward of a synthetic image through the config's own test
    pipeline (resized to ``img_size``) while capturing backbone / neck outputs (and decoder
    cross-attention of DETRs), checks their shapes and renders one ``squeeze_mean`` panel. A
    failed attempt is retried a few ways (larger size, ``init_weights``, the config as shipped;
    see :func:`_check`) before it counts.

    Args:
        config_path: A config file, or ``mmdet::rel/path.py`` / ``mmyolo::...``.
        img_size: Side of the synthetic image (its height is 3/4 of it) and of the test resize.
        log_traceback: Print the traceback of a non-pass to stderr.
        panel_dir: Keep the rendered panel of a passing config as
            ``panel_dir/<package>/<config path>.png``.

    Returns:
        ``{package, family, config, status, reason, seconds}``; ``reason`` is empty on a plain
        pass and says which retry passed otherwise.
    """
    start = time.perf_counter()
    try:
        entry = locate_config(config_path)
    except UserInputError as err:
        entry = ConfigEntry('local', '.', str(config_path), str(config_path))
        return _record(entry, 'fail', one_line(err), start)
    status, reason = 'pass', ''
    try:
        with no_downloads():
            reason, panel = _check(entry, img_size)
        if panel_dir and panel is not None:
            from ..utils.cli import write_image_atomic
            write_image_atomic(osp.join(panel_dir, entry.package, entry.config[:-3] + '.png'),
                               panel)
    except Exception as err:
        status, reason = classify_exception(err)
        if log_traceback:
            traceback.print_exc()
    return _record(entry, status, reason, start)


def _check(entry: ConfigEntry, img_size: int) -> Tuple[str, Optional[np.ndarray]]:
    """Raise on failure; return a note for the record (empty on a plain pass) and the panel.

    Attempts, cheapest first, until one passes:

    1. the light model (:func:`lighten_test_cfg`), random weights without ``init_weights``,
       test resize ``img_size``, then ``4 * img_size`` (mmcv's CPU deformable conv needs a
       3x3 P7 map);
    2. the same after ``init_weights`` (Sparse R-CNN's initial proposals come from it);
    3. the model as shipped (own ``test_cfg``) after ``init_weights`` at ``img_size``, then at
       the config's own test scale -- unless the last three attempts failed alike.

    A ``skip``-class error ends the check at once.
    """
    import torch

    from ..apis.model import load_config
    try:
        cfg = load_config(entry.path)
    except UserInputError as err:
        if 'has no "model" entry' in str(err):
            raise NotADetector('no "model" entry (dataset / schedule / runtime fragment)') \
                from None
        raise
    check_no_external_inputs(cfg)
    light = copy.deepcopy(cfg)
    lighten_test_cfg(light)
    image = synthetic_image(img_size)
    attempts = [('light', False, img_size), ('light', False, 4 * img_size),
                ('light', True, img_size), ('light', True, 4 * img_size),
                ('shipped', True, img_size), ('shipped', True, None)]
    models: Dict[Tuple[str, bool], Any] = {}
    errors: List[str] = []
    last: Optional[Exception] = None
    for variant, init, size in attempts:
        variant_cfg = light if variant == 'light' else cfg
        if size is None:
            if len(errors) >= 3 and len(set(errors[-3:])) == 1:
                break  # the same error at both sizes and as shipped: the own scale won't help
            run_cfg = cfg
        else:
            run_cfg = copy.deepcopy(variant_cfg)
            try:
                if not shrink_test_pipeline(run_cfg, size):
                    continue  # nothing to shrink: only the config's own scale
            except Exception:  # no usable test pipeline: the last attempt reports it
                continue
        if (variant, init) not in models:
            torch.manual_seed(0)
            model = models.get((variant, False)) or build_detector(variant_cfg)
            if init:
                init_weights_quietly(model)
            models[(variant, init)] = model
        try:
            panel = forward_and_check(models[(variant, init)], run_cfg, image)
        except Exception as err:
            if classify_exception(err)[0] == 'skip':
                raise
            last = err
            errors.append(one_line(err, 120))
            continue
        if not errors:
            return '', panel
        how = ('as shipped (own test_cfg) ' if variant == 'shipped' else '') + \
            ('after init_weights ' if init else '') + \
            (f'at {size} px' if size else "at the config's own test scale")
        return f'passed {how} only ({errors[0]})', panel
    if last is None:
        raise AssertionError('no attempt ran')  # cannot happen: the last one always runs
    raise last


def init_weights_quietly(model: 'nn.Module') -> None:
    """``model.init_weights()`` without MMEngine's per-parameter bookkeeping (a ``mean()`` of
    every parameter after every initializer: ~95 % of its 3-6 s on CPU) or its log."""
    from mmengine.logging import MMLogger

    from ..apis.model import _quiet_init_weights
    from ..compat.mmengine_init import without_init_info
    with without_init_info(model):
        _quiet_init_weights(model, MMLogger.get_current_instance())


def _record(entry: ConfigEntry, status: str, reason: str, start: float) -> Record:
    return OrderedDict(package=entry.package, family=entry.family, config=entry.config,
                       status=status, reason=reason,
                       seconds=round(time.perf_counter() - start, 2))
