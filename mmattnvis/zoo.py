"""Model-zoo sweep: build every shipped MMDet / MMYOLO detection config with random weights, run
one small test-mode forward with feature-map (and, for DETRs, attention) capture, render one
panel, and record ``pass`` / ``fail`` / ``skip`` per config (``tools/zoo_check.py``).

``skip`` means the config needs something this machine cannot have (an optional package, CUDA,
an external file) or is not a detector at all; anything else that goes wrong is ``fail``.
"""
import contextlib
import copy
import json
import multiprocessing as mp
import os
import os.path as osp
import re
import sys
import tempfile
import time
import traceback
from collections import OrderedDict
from multiprocessing.connection import wait as mp_wait
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, NamedTuple,
                    Optional, Sequence, Tuple)

import numpy as np

from .utils.errors import UserInputError

if TYPE_CHECKING:  # heavy imports stay out of discovery and the CLI's argument checks
    import torch.nn as nn
    from mmengine.config import Config

PACKAGES = ('mmdet', 'mmyolo')
STATUSES = ('pass', 'fail', 'skip')
Record = Dict[str, Any]


class ConfigEntry(NamedTuple):
    """One shipped config: ``package``, ``family`` (top-level folder), ``config`` (path relative
    to the package's configs directory) and the absolute ``path``."""
    package: str
    family: str
    config: str
    path: str


class NotADetector(Exception):
    """The config describes no buildable detector (tracker, re-ID, dataset fragment...)."""


class NeedsExternalData(Exception):
    """The config reads data this machine does not have (e.g. precomputed proposals)."""


class DownloadAttempted(RuntimeError):
    """Something tried to fetch weights from the network while the model was built."""


# -- discovery ---------------------------------------------------------------------------------
def package_config_root(package: str) -> Optional[str]:
    """The ``.mim/configs`` directory of an installed package (``None`` when absent)."""
    try:
        from mmengine.utils import get_installed_path
        root = get_installed_path(package)
    except Exception:
        return None
    for base in (osp.join(root, '.mim', 'configs'), osp.join(root, 'configs')):
        if osp.isdir(base):
            return base
    return None


def discover_configs(filter_regex: Optional[str] = None,
                     packages: Sequence[str] = PACKAGES,
                     roots: Optional[Dict[str, str]] = None) -> List[ConfigEntry]:
    """Every config file of ``packages``, without ``_base_`` files, sorted.

    Args:
        filter_regex: Keep configs whose ``package/config`` (e.g.
            ``mmdet/retinanet/retinanet_r18_fpn_1x_coco.py``) matches (``re.search``).
        packages: Packages to look in.
        roots: ``{package: configs_dir}`` overriding the installed locations (tests).

    Raises:
        UserInputError: Invalid regex, or no config matches.
    """
    pattern = None
    if filter_regex:
        try:
            pattern = re.compile(filter_regex)
        except re.error as err:
            raise UserInputError(f'bad --filter regex {filter_regex!r}: {err}') from None
    entries: List[ConfigEntry] = []
    for package in packages:
        root = (roots or {}).get(package) or package_config_root(package)
        if root is None or not osp.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != '_base_' and not d.startswith('.'))
            for name in filenames:
                if not name.endswith('.py') or name.startswith(('_base_', '__')):
                    continue
                path = osp.join(dirpath, name)
                rel = osp.relpath(path, root).replace(os.sep, '/')
                if pattern is not None and not pattern.search(f'{package}/{rel}'):
                    continue
                family = rel.split('/')[0] if '/' in rel else '.'
                entries.append(ConfigEntry(package, family, rel, path))
    if not entries:
        where = ', '.join(packages)
        raise UserInputError(f'no config matches --filter {filter_regex!r} in {where}'
                             if filter_regex else f'no configs found in {where}')
    return sorted(entries, key=lambda e: (e.package, e.config))


def locate_config(path: str) -> ConfigEntry:
    """The :class:`ConfigEntry` of a path (absolute, relative or ``pkg::rel``)."""
    if '::' in path:
        from .apis.model import resolve_config_path
        package, rel = path.split('::', 1)
        return ConfigEntry(package, rel.split('/')[0] if '/' in rel else '.', rel,
                           resolve_config_path(path))
    path = osp.abspath(path)
    for package in PACKAGES:
        root = package_config_root(package)
        if root and path.startswith(osp.abspath(root) + os.sep):
            rel = osp.relpath(path, root).replace(os.sep, '/')
            return ConfigEntry(package, rel.split('/')[0] if '/' in rel else '.', rel, path)
    return ConfigEntry('local', osp.basename(osp.dirname(path)) or '.', osp.basename(path), path)


# -- classification ----------------------------------------------------------------------------
_MISSING_PACKAGE = re.compile(r'no module named|is not installed|please install|pip install',
                              re.I)
_NO_CUDA = re.compile(r'cuda|no (nvidia )?gpu|not compiled with gpu|compiled without gpu|'
                      r'not implemented (on|for) (the )?cpu|only supports? gpu|'
                      r'implementation for device cpu not found', re.I)
_MISSING_FILE = re.compile(r'no such file or directory|file not found|'
                           r'file .{0,200} does not exist', re.I)


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` (at most ``limit`` characters)."""
    text = str(exc).strip()
    first = ' '.join(text.splitlines()[0].split()) if text else ''
    out = f'{type(exc).__name__}: {first}' if first else type(exc).__name__
    return out if len(out) <= limit else out[:limit - 3] + '...'


def _reason(err: BaseException) -> str:
    """:func:`one_line` without the config path ``load_config`` puts in front."""
    return re.sub(r'^UserInputError: config \S+ could not be read: ', 'config could not be read: ',
                  one_line(err, 400))[:200]


def _chain(exc: BaseException) -> List[BaseException]:
    seen: List[BaseException] = []
    while exc is not None and all(exc is not e for e in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def classify_exception(exc: BaseException) -> Tuple[str, str]:
    """``(status, reason)`` for an exception raised while checking a config.

    ``skip`` for what this machine cannot have: a missing optional package, CUDA-only code, an
    absent external file, a config that is no detector. Everything else is ``fail``, including a
    download attempt (``strip_pretrained`` should have prevented it).
    """
    chain = _chain(exc)
    deepest_first = chain[::-1]  # the root cause names the missing piece best
    for err in chain:
        if isinstance(err, DownloadAttempted):
            return 'fail', _reason(err)
    for err in chain:
        if isinstance(err, NotADetector):
            return 'skip', _reason(err)
    for err in deepest_first:
        if isinstance(err, ImportError) or _MISSING_PACKAGE.search(str(err)):
            return 'skip', 'missing package: ' + _reason(err)
    for err in deepest_first:
        if _NO_CUDA.search(str(err)):
            return 'skip', 'needs CUDA: ' + _reason(err)
    for err in deepest_first:
        if isinstance(err, (FileNotFoundError, NeedsExternalData)) \
                or _MISSING_FILE.search(str(err)):
            return 'skip', 'missing external file: ' + _reason(err)
    return 'fail', _reason(exc)


# -- one config --------------------------------------------------------------------------------
@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Within the block, every weight download raises :class:`DownloadAttempted` (cached files
    included); everything patched is restored on exit."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        url = args[0] if args else kwargs.get('url', kwargs.get('filename', '?'))
        raise DownloadAttempted(f'tried to download {url} while building the model')

    import urllib.request

    import torch.hub
    patches: List[Tuple[Any, str, Any]] = [(torch.hub, 'load_state_dict_from_url', refuse),
                                           (torch.hub, 'download_url_to_file', refuse),
                                           (urllib.request, 'urlopen', refuse)]
    schemes: Dict[str, Any] = {}
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
        schemes = CheckpointLoader._schemes
    except ImportError:
        pass
    saved_schemes = dict(schemes)
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    saved_env = {k: os.environ.get(k) for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')}
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        for prefix in saved_schemes:
            if prefix != '':  # '' is the local-file loader
                schemes[prefix] = lambda filename, *a, **k: refuse(filename)
        os.environ.update({k: '1' for k in saved_env})
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)
        schemes.update(saved_schemes)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _model_class(cfg: 'Config') -> type:
    """The registered class of ``cfg.model.type`` (no building)."""
    from mmengine.registry import MODELS
    model_type = cfg.model.get('type') if hasattr(cfg.model, 'get') else None
    if isinstance(model_type, type):
        return model_type
    if not model_type:
        raise NotADetector('the "model" entry has no type (config fragment)')
    with MODELS.switch_scope_and_registry(cfg.get('default_scope', 'mmdet')) as registry:
        cls = registry.get(model_type)
    if cls is None:
        raise KeyError(f'{model_type} is not in the model registry')
    return cls


def check_is_detector(cfg: 'Config') -> type:
    """The detector class of ``cfg``; :class:`NotADetector` for trackers, re-ID, semi-supervised
    teacher/student wrappers and other non-detector models."""
    from mmdet.models.detectors import BaseDetector
    from mmdet.models.detectors.semi_base import SemiBaseDetector
    cls = _model_class(cfg)
    if not issubclass(cls, BaseDetector):
        raise NotADetector(f'model type {cls.__name__} is not a detector')
    if issubclass(cls, SemiBaseDetector):
        raise NotADetector(f'model type {cls.__name__} is a semi-supervised teacher/student '
                           'wrapper')
    return cls


def check_no_external_inputs(cfg: 'Config') -> None:
    """:class:`NeedsExternalData` when the test pipeline needs more than an image (Fast R-CNN's
    precomputed proposals)."""
    from mmdet.utils import get_test_pipeline_cfg
    try:
        pipeline = get_test_pipeline_cfg(cfg)
    except Exception:
        return  # reported when the pipeline is built
    for t in pipeline:
        if isinstance(t, dict) and 'LoadProposals' in str(t.get('type', '')):
            raise NeedsExternalData('the test pipeline loads precomputed proposals '
                                    '(LoadProposals) from a proposal file')


def shrink_test_pipeline(cfg: 'Config', size: int) -> bool:
    """Set every resize of the test pipeline to ``size`` (in place); ``True`` if one changed."""
    from mmdet.utils import get_test_pipeline_cfg
    changed = False
    for t in get_test_pipeline_cfg(cfg):
        if not isinstance(t, dict) or 'Resize' not in str(t.get('type', '')):
            continue
        for key in ('scale', 'img_scale'):
            if isinstance(t.get(key), int):
                t[key], changed = size, True
            elif isinstance(t.get(key), (tuple, list)) and len(t[key]) == 2 \
                    and all(isinstance(v, int) for v in t[key]):
                t[key], changed = (size, size), True
        for key in ('width', 'height'):
            if isinstance(t.get(key), int):
                t[key], changed = size, True
    return changed


def lighten_test_cfg(cfg: 'Config', max_dets: int = 20, max_queries: int = 100,
                     min_score: float = 0.05) -> bool:
    """Make the model's test-time work small (in place): in its ``test_cfg`` s every
    ``max_per_img`` at most ``max_dets``, every ``score_thr`` at least ``min_score``, every NMS
    class-agnostic; Sparse R-CNN's ``num_proposals`` at most ``max_dets`` too, a DETR's
    ``num_queries`` at most ``max_queries``.

    With random weights, post-processing is most of a check's time and checks nothing of ours:
    hundreds of boxes (LVIS' 1203-class masks), per-class NMS over V3Det's 13204 sigmoid
    classes (about 0.5 each: minutes), 900 DINO queries. ``True`` if something changed.
    """
    changed = False

    def walk(node: Any, in_test_cfg: bool) -> None:
        nonlocal changed
        if isinstance(node, dict):
            for key, value in node.items():
                if in_test_cfg and key == 'max_per_img' and isinstance(value, int) \
                        and value > max_dets:
                    node[key], changed = max_dets, True
                elif in_test_cfg and key == 'score_thr' and isinstance(value, float) \
                        and value < min_score:
                    node[key], changed = min_score, True
                elif key == 'num_proposals' and isinstance(value, int) and value > max_dets:
                    node[key], changed = max_dets, True  # Sparse R-CNN: = rcnn max_per_img
                elif in_test_cfg and key == 'nms' and isinstance(value, dict) \
                        and 'iou_threshold' in value and not value.get('class_agnostic'):
                    value['class_agnostic'], changed = True, True
                else:
                    walk(value, in_test_cfg or key == 'test_cfg')
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item, in_test_cfg)

    walk(cfg.model, False)
    queries = cfg.model.get('num_queries') if hasattr(cfg.model, 'get') else None
    if isinstance(queries, int) and queries > max_queries:  # DETRs: DINO has 900
        cfg.model.num_queries, changed = max_queries, True
    return changed


def synthetic_image(size: int) -> np.ndarray:
    """A deterministic ``(3/4 size) x size`` BGR test image: gradient, noise, two boxes."""
    h, w = max(8, size * 3 // 4), max(8, size)
    rng = np.random.RandomState(0)
    img = rng.randint(0, 60, (h, w, 3)).astype(np.uint8)
    img[..., 0] += np.linspace(0, 120, w, dtype=np.uint8)[None]
    img[h // 5:h // 2, w // 6:w // 2] = (40, 200, 230)
    img[h // 2:h - h // 8, w // 2:w - w // 8] = (220, 80, 40)
    return img


def build_detector(cfg: 'Config') -> 'nn.Module':
    """The detector of ``cfg`` on CPU in eval mode with PyTorch's default random init: no
    ``Pretrained`` init, no download, and no ``init_weights`` (3-6 s per model on CPU).

    Raises:
        NotADetector: See :func:`check_is_detector`.
    """
    from mmengine.registry import MODELS, init_default_scope

    from .apis.model import strip_pretrained
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    check_is_detector(cfg)
    model = MODELS.build(strip_pretrained(copy.deepcopy(cfg.model)))
    model.cfg = cfg
    model.eval()  # not ``return model.eval()``: some detectors' ``train()`` returns None (LAD)
    return model


def _check_featmaps(cap: Any, targets: Sequence[str], batch: int) -> 'OrderedDict':
    missing = cap.missing()
    if missing:
        raise AssertionError(f'layer(s) {", ".join(missing)} did not run in the test forward')
    tensors = cap.tensors()
    if not tensors:
        raise AssertionError(f'no tensors captured from {", ".join(targets)}')
    for name, t in tensors.items():
        if t.dim() != 4 or t.shape[0] != batch or min(t.shape) < 1:
            raise AssertionError(f'captured {name} has shape {tuple(t.shape)}, expected '
                                 f'({batch}, C, H, W)')
    return tensors


def _check_render(tensors: 'OrderedDict', targets: Sequence[str], image_bgr: np.ndarray,
                  sample: Any) -> np.ndarray:
    from .apis.inference import bgr_to_rgb
    from .methods.featmap import build_reduction
    from .visualization import render_featmap
    from .render.geometry import ImageGeometry
    last = [k for k in tensors if k.split('.')[0].split('#')[0] == targets[-1]] or list(tensors)
    fmap = tensors[last[0]][0]
    panel = render_featmap(fmap, bgr_to_rgb(image_bgr), build_reduction('squeeze_mean'),
                           geometry=ImageGeometry.from_metainfo(sample.metainfo))
    h, w = image_bgr.shape[:2]
    if not (isinstance(panel, np.ndarray) and panel.dtype == np.uint8 and panel.shape == (h, w, 3)):
        raise AssertionError(f'rendered panel of {last[0]} is {getattr(panel, "dtype", None)} '
                             f'{getattr(panel, "shape", None)}, expected uint8 ({h}, {w}, 3)')
    return panel


def _check_attention(acap: Any, batch: int) -> None:
    import torch
    record = acap.record
    wanted = sorted(i for p, i in acap.targets if p == 'decoder_cross')
    if not wanted:
        raise AssertionError('no decoder cross-attention module found')
    got = record.layers('decoder_cross')
    if got != wanted:
        raise AssertionError(f'decoder cross-attention recorded for layers {got}, expected '
                             f'{wanted}')
    queries = None
    if record.head_outputs is not None:
        queries = int(record.head_outputs[0].shape[1])
    for i in wanted:
        module = acap.targets[('decoder_cross', i)][1]
        heads = int(module.num_heads)
        key = ('decoder_cross', i)
        if key in record.dense:
            att = record.dense[key]
            ok = att.dim() == 4 and att.shape[0] == batch and att.shape[1] == heads \
                and min(att.shape) > 0
            if ok and record.key_shape is not None:
                ok = att.shape[3] == record.key_shape[0] * record.key_shape[1]
            if ok and queries is not None:
                ok = att.shape[2] == queries
            if not ok:
                raise AssertionError(f'decoder layer {i} cross-attention has shape '
                                     f'{tuple(att.shape)} (batch {batch}, {heads} heads, '
                                     f'{queries} queries, keys {record.key_shape})')
            total = att.float().sum(-1)
            if not torch.isfinite(att).all() or not torch.allclose(
                    total, torch.ones_like(total), atol=1e-3):
                raise AssertionError(f'decoder layer {i} cross-attention rows do not sum to 1')
        else:
            rec = record.deformable[key]
            lv, pts = int(module.num_levels), int(module.num_points)
            loc, w = rec.locations, rec.weights
            ok = (loc.dim() == 6 and tuple(loc.shape[2:]) == (heads, lv, pts, 2)
                  and loc.shape[0] == batch and loc.shape[1] > 0
                  and tuple(w.shape) == tuple(loc.shape[:-1])
                  and tuple(rec.spatial_shapes.shape) == (lv, 2))
            if ok and queries is not None:
                ok = loc.shape[1] == queries
            if not ok:
                raise AssertionError(
                    f'decoder layer {i} deformable sampling has locations {tuple(loc.shape)}, '
                    f'weights {tuple(w.shape)}, spatial shapes {tuple(rec.spatial_shapes.shape)}'
                    f' (batch {batch}, {heads} heads, {lv} levels, {pts} points, '
                    f'{queries} queries)')
            total = w.float().sum((-1, -2))
            if not (torch.isfinite(loc).all() and torch.allclose(
                    total, torch.ones_like(total), atol=1e-3)):
                raise AssertionError(f'decoder layer {i} sampling weights do not sum to 1')


def forward_and_check(model: 'nn.Module', cfg: 'Config', image_bgr: np.ndarray) -> np.ndarray:
    """One test-mode forward through ``cfg``'s test pipeline with feature-map capture (and
    attention capture for DETRs), then the shape / render checks; returns the rendered panel
    (RGB).

    Raises:
        AssertionError: A check failed (the message names it).
    """
    import torch

    from .apis.inference import build_test_pipeline, prepare_batch
    from .capture.attention import AttentionCapture, is_detr_family
    from .capture.featmaps import FeatureCapture

    pipeline = build_test_pipeline(cfg)
    data = prepare_batch([image_bgr], pipeline)
    targets = ['backbone'] + (['neck'] if getattr(model, 'neck', None) is not None else [])
    detr = is_detr_family(model)
    with contextlib.ExitStack() as stack:
        cap = stack.enter_context(FeatureCapture(model, targets))
        acap = stack.enter_context(AttentionCapture(model, parts=('decoder_cross', ))) \
            if detr else None
        with torch.no_grad():
            samples = model.test_step(data)
    if len(samples) != 1:
        raise AssertionError(f'test_step returned {len(samples)} samples for 1 image')
    tensors = _check_featmaps(cap, targets, 1)
    panel = _check_render(tensors, targets, image_bgr, samples[0])
    if acap is not None:
        _check_attention(acap, 1)
    return panel


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
            from .utils.cli import write_image_atomic
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

    from .apis.model import load_config
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
    from mmengine.model import base_module, weight_init

    from .apis.model import _quiet_init_weights
    modules = list(model.modules())
    saved = (base_module.update_init_info, weight_init.update_init_info)
    shared: Dict[Any, Dict[str, Any]] = {}
    try:
        for m in modules:  # present everywhere: init_weights skips its top-level recording
            m._params_init_info = shared
        base_module.update_init_info = weight_init.update_init_info = _no_init_info
        _quiet_init_weights(model, MMLogger.get_current_instance())
    finally:
        base_module.update_init_info, weight_init.update_init_info = saved
        for m in modules:
            if '_params_init_info' in m.__dict__:
                del m._params_init_info


def _no_init_info(module: Any, init_info: str) -> None:
    pass


def _record(entry: ConfigEntry, status: str, reason: str, start: float) -> Record:
    return OrderedDict(package=entry.package, family=entry.family, config=entry.config,
                       status=status, reason=reason,
                       seconds=round(time.perf_counter() - start, 2))


# -- many configs, one process each ------------------------------------------------------------
PRELOAD = ('mmcv.ops', 'mmdet.models', 'mmdet.datasets', 'mmyolo.models', 'mmyolo.datasets',
           'mmattnvis.apis', 'mmattnvis.capture', 'mmattnvis.render.featmap', 'mmattnvis.zoo')


def _context() -> Any:
    """A ``forkserver`` context whose server imports :data:`PRELOAD` once, so workers start warm
    (about 10 s of imports saved per config) yet never inherit a used OpenMP thread pool (a
    plain ``fork`` after any torch op can hang the child)."""
    try:
        ctx = mp.get_context('forkserver')
    except ValueError:
        return mp.get_context('spawn')
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def _noop() -> None:
    pass


def _worker(conn: Any, path: str, img_size: int, threads: int, log_path: Optional[str],
            panel_dir: Optional[str] = None) -> None:
    if log_path:
        os.makedirs(osp.dirname(log_path), exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    import warnings
    warnings.filterwarnings('ignore')
    if threads > 0:
        import torch
        torch.set_num_threads(threads)
    record = check_config(path, img_size, log_traceback=True, panel_dir=panel_dir)
    conn.send(dict(record))
    conn.close()


def run_sweep(entries: Iterable[ConfigEntry],
              jobs: int = 1,
              timeout: float = 120.0,
              img_size: int = 128,
              log_dir: Optional[str] = None,
              on_record: Optional[Callable[[Record], None]] = None,
              panel_dir: Optional[str] = None) -> List[Record]:
    """Check ``entries``, each in its own process so a crash, hang or OOM in one config
    cannot stop the sweep.

    Args:
        entries: Configs from :func:`discover_configs`.
        jobs: Processes at once (torch uses one thread each when ``jobs > 1``).
        timeout: Seconds per config before it is killed and recorded as ``fail``.
        img_size: See :func:`check_config`.
        log_dir: Keep each non-passing config's output and traceback in
            ``log_dir/<package>/<config>.log``.
        on_record: Called with each record as it completes.
        panel_dir: Keep each passing config's rendered panel there (see :func:`check_config`).
    """
    ctx = _context()
    warm = ctx.Process(target=_noop)  # start the server (its imports) before any clock runs
    warm.start()
    warm.join()
    pending = list(entries)
    running: Dict[Any, Tuple[Any, Any, ConfigEntry, float, Optional[str]]] = {}
    records: List[Record] = []
    threads = 1 if jobs > 1 else 0

    def finish(record: Record, entry: ConfigEntry, log_path: Optional[str]) -> None:
        if log_path and osp.exists(log_path):
            if record['status'] == 'pass':
                os.remove(log_path)
            else:
                final = osp.join(log_dir, entry.package, entry.config[:-3] + '.log')
                os.makedirs(osp.dirname(final), exist_ok=True)
                os.replace(log_path, final)
        records.append(record)
        if on_record is not None:
            on_record(record)

    while pending or running:
        while pending and len(running) < max(1, jobs):
            entry = pending.pop(0)
            log_path = osp.join(log_dir, '.running', f'{len(records) + len(running)}.log') \
                if log_dir else None
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(send, entry.path, img_size, threads,
                                                     log_path, panel_dir), daemon=True)
            proc.start()
            send.close()
            running[proc.sentinel] = (proc, recv, entry, time.perf_counter(), log_path)
        mp_wait([r[1] for r in running.values()] + list(running), timeout=0.5)
        for key, (proc, recv, entry, started, log_path) in list(running.items()):
            record = None
            elapsed = time.perf_counter() - started
            if elapsed > timeout:
                # Over time is a timeout even when a result came in since the last look: the
                # verdict must not depend on when the 0.5 s poll happened to wake up.
                proc.kill()
                proc.join()
                record = OrderedDict(package=entry.package, family=entry.family,
                                     config=entry.config, status='fail',
                                     reason=f'timeout after {timeout:g}s',
                                     seconds=round(elapsed, 2))
            elif recv.poll():
                try:
                    record = recv.recv()
                except EOFError:
                    record = None
                proc.join(5)
                if record is None:
                    record = _died(entry, proc, elapsed)
            elif not proc.is_alive():
                proc.join()
                record = _died(entry, proc, elapsed)
            if record is not None:
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                recv.close()
                del running[key]
                finish(record, entry, log_path)
    if log_dir:
        for d in (osp.join(log_dir, '.running'), log_dir):
            if osp.isdir(d) and not os.listdir(d):
                os.rmdir(d)
    return records


def _died(entry: ConfigEntry, proc: Any, elapsed: float) -> Record:
    code = proc.exitcode
    how = f'signal {-code}' if code is not None and code < 0 else f'exit code {code}'
    return OrderedDict(package=entry.package, family=entry.family, config=entry.config,
                       status='fail', reason=f'worker died ({how}; out of memory?)'
                       if code == -9 else f'worker died ({how})', seconds=round(elapsed, 2))


# -- output ------------------------------------------------------------------------------------
def summarize(records: Sequence[Record]) -> Dict[str, Any]:
    """Counts per status and the pass rate ``pass / (pass + fail)`` (``None`` if no buildable
    config)."""
    counts = {s: sum(1 for r in records if r['status'] == s) for s in STATUSES}
    buildable = counts['pass'] + counts['fail']
    return dict(counts, total=len(records),
                pass_rate=(counts['pass'] / buildable) if buildable else None)


def _rate(summary: Dict[str, Any]) -> str:
    return '-' if summary['pass_rate'] is None else f"{100 * summary['pass_rate']:.1f} %"


def _cell(text: Any) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def render_markdown(records: Sequence[Record], title_note: str = '') -> str:
    """The ``zoo_matrix.md`` text: a summary table, then one table per package/family."""
    groups: 'OrderedDict[Tuple[str, str], List[Record]]' = OrderedDict()
    for r in sorted(records, key=lambda r: (r['package'], r['family'], r['config'])):
        groups.setdefault((r['package'], r['family']), []).append(r)
    lines = ['# Model-zoo check', '']
    if title_note:
        lines += [title_note, '']
    lines += ['Pass rate = pass / (pass + fail): skipped configs need something this machine '
              'cannot have (an optional package, CUDA, an external file) or are no detector.', '',
              '| | pass | fail | skip | total | pass rate |', '|---|---|---|---|---|---|']
    packages = sorted({r['package'] for r in records})
    for name, subset in [(p, [r for r in records if r['package'] == p]) for p in packages] + \
            [('all', list(records))]:
        s = summarize(subset)
        lines.append(f"| {name} | {s['pass']} | {s['fail']} | {s['skip']} | {s['total']} | "
                     f'{_rate(s)} |')
    total_s = sum(float(r.get('seconds') or 0) for r in records)
    lines += ['', f'Total check time {total_s:.0f} s (summed over configs).', '']
    why: Dict[str, int] = {}
    for r in records:
        if r['status'] == 'skip':
            kind = str(r.get('reason', '')).split(':')[0] or '?'
            why[kind] = why.get(kind, 0) + 1
    if why:
        lines += ['Skipped: ' + ', '.join(f'{k} {n}' for k, n in sorted(why.items())) + '.', '']
    failed = [r for r in records if r['status'] == 'fail']
    if failed:
        lines += ['## Failures', '', '| config | reason |', '|---|---|']
        lines += [f"| {r['package']}/{_cell(r['config'])} | {_cell(r.get('reason', ''))} |"
                  for r in sorted(failed, key=lambda r: (r['package'], r['config']))]
        lines.append('')
    for (package, family), rows in groups.items():
        s = summarize(rows)
        lines += [f'## {package}/{family}', '',
                  f"{s['pass']} pass, {s['fail']} fail, {s['skip']} skip", '',
                  '| config | status | time (s) | reason |', '|---|---|---|---|']
        for r in rows:
            lines.append(f"| {_cell(r['config'])} | {r['status']} | "
                         f"{float(r.get('seconds') or 0):.1f} | {_cell(r.get('reason', ''))} |")
        lines.append('')
    return '\n'.join(lines)


def _write_atomic(path: str, text: str) -> None:
    out_dir = osp.dirname(osp.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=out_dir)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_matrix(records: Sequence[Record], out_dir: str,
                 title_note: str = '') -> Tuple[str, str]:
    """Write ``zoo_matrix.md`` and ``zoo_matrix.json`` (records sorted by package and config).

    Returns:
        The two paths.
    """
    records = sorted(records, key=lambda r: (r['package'], r['config']))
    md_path = osp.join(out_dir, 'zoo_matrix.md')
    json_path = osp.join(out_dir, 'zoo_matrix.json')
    _write_atomic(json_path, json.dumps([dict(r) for r in records], indent=1) + '\n')
    _write_atomic(md_path, render_markdown(records, title_note))
    return md_path, json_path


def read_matrix(out_dir: str) -> List[Record]:
    """Records of an existing ``zoo_matrix.json`` (empty list when there is none).

    Raises:
        UserInputError: The file exists but is not a list of records.
    """
    path = osp.join(out_dir, 'zoo_matrix.json')
    if not osp.isfile(path):
        return []
    try:
        with open(path) as f:
            records = json.load(f)
        assert isinstance(records, list) and all(
            {'package', 'config', 'status'} <= set(r) for r in records)
    except Exception:
        raise UserInputError(f'{path} is not a zoo matrix (list of records); remove it or '
                             'drop --resume') from None
    return records


def versions_note(img_size: int) -> str:
    """A one-line description of the environment the sweep ran in."""
    parts = []
    for name in ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmyolo'):
        try:
            parts.append(f'{name} {__import__(name).__version__}')
        except Exception:
            pass
    return f"{', '.join(parts)}; CPU, random weights, {img_size} px synthetic image."
