"""The files shipped with mmattnvis: configs, tools, demo images and the shapes models.

Installed from a wheel they live in ``mmattnvis/.mim/`` (the layout MMDetection uses, which
``mim run`` expects; ``setup.py`` fills it at build time). In a source checkout (a clone, an
editable install) they are read from the repository root.

References:

- config ``mmattnvis::shapes/yolov5_n_shapes.py`` -> ``configs/shapes/yolov5_n_shapes.py``
- checkpoint ``mmattnvis::shapes/yolov5_n_shapes.pth``
  -> ``models/shapes/yolov5_n_shapes/weights.pth``
"""
import os
import os.path as osp
from typing import List, Tuple

from .errors import UserInputError, closest_names

PACKAGE = 'mmattnvis'
PREFIX = PACKAGE + '::'
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def data_root() -> str:
    """The repository root of a source checkout (so a ``.mim`` copy left by an in-tree build
    never shadows the sources), else ``mmattnvis/.mim``."""
    repo = osp.dirname(PACKAGE_DIR)
    if osp.isfile(osp.join(repo, 'setup.py')) and osp.isdir(osp.join(repo, 'configs')):
        return repo
    return osp.join(PACKAGE_DIR, '.mim')


def data_path(*parts: str) -> str:
    """Path of a shipped file or folder, e.g. ``data_path('demo', 'images')``."""
    return osp.join(data_root(), *parts)


def is_package_ref(value: object) -> bool:
    """Whether ``value`` is an ``mmattnvis::...`` reference."""
    return isinstance(value, str) and value.startswith(PREFIX)


def resolve_config(ref: str) -> str:
    """The file of a shipped config ``mmattnvis::<dir>/<name>.py``."""
    rel = ref[len(PREFIX):] if is_package_ref(ref) else ref
    path = data_path('configs', rel)
    if not osp.isfile(path):
        choices = shipped_configs()
        hint = closest_names(rel, choices)
        raise UserInputError(f'no shipped config {ref}' + (
            f'; did you mean {", ".join(PREFIX + h for h in hint)}?' if hint else
            f'; shipped: {", ".join(PREFIX + c for c in choices)}'))
    return path


def resolve_checkpoint(ref: str) -> str:
    """The weights of a shipped model ``mmattnvis::<dir>/<name>.pth``."""
    rel = ref[len(PREFIX):]
    stem = rel[:-len('.pth')] if rel.endswith('.pth') else rel
    path = data_path('models', stem, 'weights.pth')
    if not osp.isfile(path):
        names = [f'{PREFIX}{n}.pth' for n in shipped_models()]
        raise UserInputError(f'no shipped model {ref}; shipped: {", ".join(names)}')
    return path


def shipped_configs() -> List[str]:
    """Relative paths of the shipped configs (``shapes/yolov5_n_shapes.py``, ...)."""
    root = data_path('configs')
    out = []
    for dirpath, _, files in os.walk(root):
        out += [osp.relpath(osp.join(dirpath, f), root) for f in files if f.endswith('.py')]
    return sorted(out)


def shipped_models() -> List[str]:
    """Names of the shipped models as ``<dir>/<name>`` (``shapes/yolov5_n_shapes``, ...)."""
    root = data_path('models')
    out = []
    for dirpath, _, files in os.walk(root):
        if 'weights.pth' in files:
            out.append(osp.relpath(dirpath, root))
    return sorted(out)


def shipped_model(name: str) -> Tuple[str, str]:
    """Config file and weights file of a shipped model.

    Args:
        name: ``yolov5_n_shapes``, ``shapes/yolov5_n_shapes`` or
            ``mmattnvis::shapes/yolov5_n_shapes.pth``.

    Returns:
        ``(config_path, weights_path)``, ready for :func:`mmattnvis.apis.init_model`.
    """
    key = name[len(PREFIX):] if is_package_ref(name) else name
    key = key[:-len('.pth')] if key.endswith('.pth') else key
    models = shipped_models()
    matches = [m for m in models if m == key or osp.basename(m) == key]
    if len(matches) != 1:
        raise UserInputError(f'no shipped model {name!r}; shipped: {", ".join(models)}')
    return resolve_config(matches[0] + '.py'), resolve_checkpoint(PREFIX + matches[0] + '.pth')
