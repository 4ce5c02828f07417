"""Build a detector from a config and load its weights safely."""
import copy
import os.path as osp
from typing import Any, Dict, List, Optional, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from ..utils.checkpoint import load_checkpoint_safely
from ..utils.errors import UserInputError
from ..utils.package_data import is_package_ref, resolve_checkpoint, resolve_config


def resolve_config_path(config: str) -> str:
    """A config file path; ``mmdet::x.py`` / ``mmyolo::x.py`` name a package's shipped config,
    ``mmattnvis::x.py`` one of ours (``mmattnvis/.mim/configs`` or the checkout's ``configs``)."""
    if is_package_ref(config):
        return resolve_config(config)
    if '::' in config:
        package, rel = config.split('::', 1)
        if package == 'mmyolo' and not has_mmyolo():
            raise mmyolo_missing(config)
        try:
            from mmengine.utils import get_installed_path
            root = get_installed_path(package)
        except Exception:
            raise UserInputError(f"config {config}: package '{package}' is not installed") from None
        for base in (osp.join(root, '.mim', 'configs'), osp.join(root, 'configs')):
            path = osp.join(base, rel)
            if osp.isfile(path):
                return path
        raise UserInputError(f'config not found: {config} (looked in {root}/.mim/configs)')
    if not osp.isfile(config):
        raise UserInputError(f'config not found: {config}')
    return config


def has_mmyolo() -> bool:
    """Whether MMYOLO is importable (it is the optional extra ``mmattnvis[mmyolo]``)."""
    import importlib.util
    return importlib.util.find_spec('mmyolo') is not None


def mmyolo_missing(config: Any) -> UserInputError:
    """The one-line error for a YOLO config without MMYOLO installed."""
    return UserInputError(f"config {_name(config)} needs MMYOLO, which is not installed: "
                          f"pip install 'mmattnvis[mmyolo]' (or: mim install mmyolo)")


def load_config(config: Union[str, Config],
                cfg_options: Optional[Dict[str, Any]] = None) -> Config:
    """Read a config (path, ``pkg::path`` or :class:`Config`) and merge ``--cfg-options``."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        path = resolve_config_path(str(config))
        try:
            cfg = Config.fromfile(path)
        except Exception as err:  # syntax errors, missing _base_ files...
            if 'mmyolo' in str(err) and not has_mmyolo():
                raise mmyolo_missing(config) from None
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserInputError(f'config {config} could not be read: {msg}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise UserInputError(f'config {config} has no "model" entry')
    if cfg.get('default_scope') == 'mmyolo' and not has_mmyolo():
        raise mmyolo_missing(config)
    return cfg


def strip_pretrained(cfg_node: Any) -> Any:
    """Remove every ``Pretrained`` ``init_cfg``, ``pretrained=...`` and distillation
    ``teacher_ckpt=...`` from a model config, and turn mmcv's ``MMSyncBN`` (which needs a process
    group to be built) into ``BN``, which computes the same in eval mode.

    Building must never download; mmattnvis never fetches weights.
    """
    if isinstance(cfg_node, dict):
        for key in list(cfg_node.keys()):
            value = cfg_node[key]
            if key in ('pretrained', 'teacher_ckpt') and isinstance(value, str):
                cfg_node[key] = None
            elif key == 'type' and value == 'MMSyncBN':
                cfg_node[key] = 'BN'
            elif key == 'init_cfg':
                cfg_node[key] = _drop_pretrained(value)
            else:
                strip_pretrained(value)
    elif isinstance(cfg_node, list):
        for item in cfg_node:
            strip_pretrained(item)
    return cfg_node


def _drop_pretrained(init_cfg: Any) -> Any:
    if isinstance(init_cfg, dict):
        return None if init_cfg.get('type') == 'Pretrained' else init_cfg
    if isinstance(init_cfg, list):
        kept = [c for c in init_cfg if not (isinstance(c, dict) and c.get('type') == 'Pretrained')]
        return kept or None
    return init_cfg


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[Dict[str, Any]] = None,
               unsafe_load: bool = False,
               strict: bool = True) -> nn.Module:
    """Build an MMDet / MMYOLO detector in eval mode.

    Args:
        config: Config path, ``mmdet::``/``mmyolo::`` path, or :class:`Config`.
        checkpoint: Weights file or a shipped model (``mmattnvis::shapes/<name>.pth``);
            ``None`` keeps a random initialisation (no download).
        device: Torch device string.
        cfg_options: ``--cfg-options`` overrides.
        unsafe_load: Allow full unpickling of the checkpoint (trusted files only).
        strict: Fail when checkpoint keys do not match the model.

    Returns:
        The model, with ``model.cfg`` and ``model.dataset_meta`` set.
    """
    cfg = load_config(config, cfg_options)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    model_cfg = strip_pretrained(copy.deepcopy(cfg.model))
    from mmengine.registry import MODELS
    try:
        model = MODELS.build(model_cfg)
    except Exception as err:
        if 'mmyolo' in str(err) and not has_mmyolo():
            raise mmyolo_missing(config) from None
        raise UserInputError(f'could not build the model from {_name(config)}: '
                             f'{type(err).__name__}: {_first_line(err)}') from None
    logger = MMLogger.get_current_instance()
    meta: Dict[str, Any] = {}
    if checkpoint is not None and is_package_ref(checkpoint):
        checkpoint = resolve_checkpoint(checkpoint)
    if checkpoint is not None:
        meta = load_checkpoint_safely(model, checkpoint, unsafe=unsafe_load, strict=strict,
                                      logger=logger)
    else:
        _quiet_init_weights(model, logger)
    model.cfg = cfg
    model.dataset_meta = _dataset_meta(cfg, meta, model)
    model.to(device)
    model.eval()
    return model


def _quiet_init_weights(model: nn.Module, logger) -> None:
    """``init_weights`` without MMEngine's per-parameter INFO report."""
    import logging
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()  # type: ignore[operator]  # nn.Module attributes are typed Tensor | Module
    finally:
        logger.setLevel(old)


def _dataset_meta(cfg: Config, meta: Dict[str, Any], model: nn.Module) -> Dict[str, Any]:
    out = _dataset_meta_raw(cfg, meta, model)
    if out.get('palette') is not None and not isinstance(out['palette'], str):
        # DetLocalVisualizer wants tuples; weights-only checkpoints store lists
        out['palette'] = [tuple(int(c) for c in p) for p in out['palette']]
    if out.get('classes') is not None:
        out['classes'] = tuple(out['classes'])
    return out


def _dataset_meta_raw(cfg: Config, meta: Dict[str, Any], model: nn.Module) -> Dict[str, Any]:
    if isinstance(meta.get('dataset_meta'), dict) and meta['dataset_meta'].get('classes'):
        return {k.lower(): v for k, v in meta['dataset_meta'].items()}
    if meta.get('classes'):
        return {'classes': tuple(meta['classes'])}
    for loader in ('test_dataloader', 'val_dataloader'):
        ds = cfg.get(loader, {}).get('dataset', {}) if cfg.get(loader) else {}
        while isinstance(ds, dict) and 'dataset' in ds and 'metainfo' not in ds:
            ds = ds['dataset']
        metainfo = ds.get('metainfo') if isinstance(ds, dict) else None
        if metainfo and metainfo.get('classes'):
            return {'classes': tuple(metainfo['classes']), **(
                {'palette': metainfo['palette']} if 'palette' in metainfo else {})}
    num_classes = _num_classes(model)
    from mmdet.evaluation import get_classes
    coco = tuple(get_classes('coco'))
    if num_classes in (None, len(coco)):
        return {'classes': coco}
    return {'classes': tuple(f'class{i}' for i in range(num_classes))}


def _num_classes(model: nn.Module) -> Optional[int]:
    for name in ('bbox_head', 'roi_head'):
        head = getattr(model, name, None)
        if head is None:
            continue
        if hasattr(head, 'num_classes'):
            return int(head.num_classes)
        if hasattr(head, 'bbox_head') and hasattr(head.bbox_head, 'num_classes'):
            return int(head.bbox_head.num_classes)
        if hasattr(head, 'head_module') and hasattr(head.head_module, 'num_classes'):
            return int(head.head_module.num_classes)
    return None


def _name(config: Any) -> str:
    return config if isinstance(config, str) else getattr(config, 'filename', 'the config')


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ''


def available_layers(model: nn.Module) -> List[str]:
    """Module names a user can pass as target layers."""
    return [n for n, _ in model.named_modules() if n]


def checkpoint_arg(value: Optional[str]) -> Optional[str]:
    """A CLI ``CHECKPOINT``: ``none`` means random weights, ``mmattnvis::shapes/<name>.pth`` a
    shipped model; a missing file is an error."""
    if value is None or str(value).lower() == 'none':
        return None
    if is_package_ref(value):
        return resolve_checkpoint(value)
    from ..utils.checkpoint import check_checkpoint_file
    return check_checkpoint_file(value)  # before any model work: exists, a torch file


def init_model_from_args(args) -> nn.Module:
    """Build the model of a CLI's ``config``/``checkpoint``/``--device``/``--cfg-options``/
    ``--unsafe-load`` arguments, checking the config and checkpoint paths first."""
    from ..utils.cli import pick_device
    load_config(args.config, args.cfg_options)  # fail early on a bad config path
    checkpoint = checkpoint_arg(args.checkpoint)
    return init_model(args.config, checkpoint, device=pick_device(args.device),
                      cfg_options=args.cfg_options, unsafe_load=args.unsafe_load)


def runner_config(config: str, cfg_options: Optional[Dict[str, Any]], launcher: str,
                  work_dir: Optional[str]) -> Config:
    """The config of ``tools/train.py`` / ``tools/test.py``: overrides merged, launcher and
    ``work_dir`` set (default ``./work_dirs/<config name>``), ``Pretrained`` inits removed (no
    download), and the gloo/CPU DDP setup applied for ``launcher='pytorch'`` without CUDA."""
    from ..utils.dist import prepare_cpu_distributed
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        name = osp.splitext(osp.basename(str(config).split('::')[-1]))[0]
        cfg.work_dir = osp.join('./work_dirs', name)
    cfg.model = strip_pretrained(cfg.model)
    prepare_cpu_distributed(cfg)
    return cfg
