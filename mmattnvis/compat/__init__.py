"""Every patch of another library's internals lives here. Each module names the versions it was
written for (``TESTED_VERSIONS``) and fingerprints of the code it relies on (``FINGERPRINTS``: sha1
of the source), which ``tests/test_compat.py`` compares with the installed libraries."""
import hashlib
import importlib
import inspect

from .mmengine_config import patch_config_resolution


def heads_using(model, base: type, method: str) -> list:
    """The modules of ``model`` that are ``base`` instances running ``base``'s own ``method``
    (not overridden by their class, not already replaced on the instance): the heads a patch
    of that method may take over."""
    return [m for m in model.modules() if isinstance(m, base)
            and getattr(type(m), method) is getattr(base, method) and method not in vars(m)]


def source_fingerprint(qualname: str) -> str:
    """sha1 of the source of ``package.module.Class.attr`` (module path found by import)."""
    parts = qualname.split('.')
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return hashlib.sha1(inspect.getsource(obj).encode()).hexdigest()
    raise ImportError(f'cannot import any module of {qualname}')


__all__ = ['heads_using', 'patch_config_resolution', 'source_fingerprint']
