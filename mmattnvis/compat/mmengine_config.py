"""``mmattnvis::`` config references in MMEngine's ``Config``.

Written for MMEngine 0.10.x (``mmengine/config/config.py``: the static methods
``Config._get_cfg_path`` and ``Config.fromfile``; ``mmengine/config/utils.py``:
``MODULE2PACKAGE``). Applied once when ``mmattnvis`` is imported; it changes nothing but
``mmattnvis::`` references:

- ``_base_ = 'mmattnvis::featmap/yolov5_n_neck_featmap.py'`` resolves to the shipped config
  (``mmattnvis/.mim/configs/`` installed, ``configs/`` in a source checkout). MMEngine's own
  ``pkg::`` lookup would read ``get_installed_path``, which misses editable installs and
  checkouts on ``PYTHONPATH``, and it would stamp ``_scope_='mmattnvis'`` on every typed dict of
  the base; our configs are MMDet / MMYOLO configs, so they are treated as local base files and
  keep the scopes their own ``mmdet::`` / ``mmyolo::`` bases give them.
- ``Config.fromfile('mmattnvis::...')`` reads the shipped config.
- ``mmattnvis`` is added to MMEngine's package mapping (``MODULE2PACKAGE``), as for OpenMMLab's
  own codebases.
"""
import functools
from typing import Optional, Tuple

MMENGINE_VERSIONS = ('0.10.0', '0.11.0')  # [low, high): versions this patch was written for
#: mmengine versions it was tested with, and sha1 of the source of what it wraps.
TESTED_VERSIONS = ('0.10.7', )
FINGERPRINTS = {
    'mmengine.config.config.Config._get_cfg_path': '3c31812a0f821c5f41a8bedb3ee6e629c3f74141',
    'mmengine.config.config.Config.fromfile': '4fd8da8f39137e1a3e1bdade0d128ad0f7b5f0dc',
}
_PATCHED = '_mmattnvis_patched'


def patch_config_resolution() -> None:
    """Teach MMEngine's ``Config`` the ``mmattnvis::`` references (idempotent)."""
    from mmengine.config import Config
    from mmengine.config import utils as cfg_utils

    from ..utils.package_data import PACKAGE, is_package_ref, resolve_config

    cfg_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    if getattr(Config._get_cfg_path, _PATCHED, False):
        return
    get_cfg_path = Config._get_cfg_path
    fromfile = Config.fromfile

    @functools.wraps(get_cfg_path)
    def _get_cfg_path(cfg_path: str, filename: str) -> Tuple[str, Optional[str]]:
        if is_package_ref(cfg_path):
            return resolve_config(cfg_path), None
        return get_cfg_path(cfg_path, filename)

    @functools.wraps(fromfile)
    def _fromfile(filename, *args, **kwargs):
        if is_package_ref(filename):
            filename = resolve_config(filename)
        return fromfile(filename, *args, **kwargs)

    setattr(_get_cfg_path, _PATCHED, True)
    Config._get_cfg_path = staticmethod(_get_cfg_path)
    Config.fromfile = staticmethod(_fromfile)
