"""Discovery: every shipped config of the installed MMDet / MMYOLO packages."""
import os
import os.path as osp
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from ..utils.errors import UserInputError

PACKAGES = ('mmdet', 'mmyolo')
#: One config's result: ``{package, family, config, status, reason, seconds}``.
Record = Dict[str, Any]


class ConfigEntry(NamedTuple):
    """One shipped config: ``package``, ``family`` (top-level folder), ``config`` (path relative
    to the package's configs directory) and the absolute ``path``."""
    package: str
    family: str
    config: str
    path: str


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
        from ..apis.model import resolve_config_path
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
