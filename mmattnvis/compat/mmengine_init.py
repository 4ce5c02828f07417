"""MMEngine's weight-initialisation bookkeeping switched off (the model-zoo sweep).

``BaseModule.init_weights`` records, after every initializer, a ``mean()`` of every parameter
(``update_init_info``, a module global of ``mmengine.model.base_module`` and of ``weight_init``)
for its log: about 95 % of the 3-6 s an ``init_weights`` takes on CPU. :func:`without_init_info`
replaces that function with a no-op while active and gives every module a shared
``_params_init_info`` (with it present, ``init_weights`` skips its top-level recording); both are
restored on exit, also when an initializer raises.

Relies on: ``update_init_info`` being looked up as a global of both modules at call time, and on
``BaseModule.init_weights`` creating, reading and deleting ``_params_init_info`` as in 0.10.7.
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator

from torch import nn

#: mmengine versions this patch was written and tested for.
TESTED_VERSIONS = ('0.10.7', )
#: (qualified name, sha1 of ``inspect.getsource``) of what the patch relies on.
FINGERPRINTS = {
    'mmengine.model.base_module.BaseModule.init_weights':
    '80638c18a3aa48c8dcc976538875c3f55362f4c0',
    'mmengine.model.weight_init.update_init_info':
    '6d6f9176aab60d4721d948a54ec9c74dd17e15d7',
}


def _no_init_info(module: Any, init_info: str) -> None:
    pass


@contextmanager
def without_init_info(model: nn.Module) -> Iterator[None]:
    """No per-parameter init bookkeeping for ``model`` while active (see the module docstring)."""
    from mmengine.model import base_module, weight_init
    modules = list(model.modules())
    saved = (base_module.update_init_info, weight_init.update_init_info)
    shared: Dict[Any, Dict[str, Any]] = {}
    try:
        for m in modules:  # present everywhere: init_weights skips its top-level recording
            m._params_init_info = shared  # type: ignore[assignment]
        base_module.update_init_info = weight_init.update_init_info = _no_init_info
        yield
    finally:
        base_module.update_init_info, weight_init.update_init_info = saved
        for m in modules:
            if '_params_init_info' in m.__dict__:
                del m._params_init_info
