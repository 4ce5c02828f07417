"""MMEngine's training checkpoints under PyTorch's weights-only loader.

Written for mmengine 0.10.7, torch 2.13 and numpy 1.26 (see :data:`WRITTEN_FOR`).

A checkpoint saved by MMEngine's ``Runner`` (``epoch_N.pth``) holds, next to the tensors, the
``message_hub`` with :class:`mmengine.logging.HistoryBuffer` objects whose state holds numpy arrays
and scalars and the buffer's statistics methods (pickled as ``getattr(HistoryBuffer, 'mean')``).
``torch.load(weights_only=True)`` refuses these globals. :func:`runner_checkpoint_globals` lets
exactly these through, and only while the context is active:

* ``HistoryBuffer``; numpy's array reconstruction, ``ndarray``, ``dtype`` and scalars;
* ``builtins.getattr`` replaced by :func:`_history_buffer_method`, which returns only the
  statistics methods defined on ``HistoryBuffer`` itself (``HistoryBuffer.__setstate__`` puts
  them into a class-level table that is called later, so nothing else may reach it).

:func:`local_checkpoint_loader` (used by ``utils.checkpoint.safe_runner_checkpoints``) swaps
MMEngine's loader for local files (``CheckpointLoader._schemes['']``, i.e.
``mmengine.runner.checkpoint.load_from_local``, which calls ``torch.load`` without
``weights_only``) for one that reads through
:func:`mmattnvis.utils.checkpoint.read_checkpoint` (weights-only unless ``unsafe``, one-line
errors), and restores it afterwards. ``Runner.resume`` and ``load_from`` go through it; a shipped
model's name (``load_from='mmattnvis::shapes/<name>.pth'``, which MMEngine hands to the local
loader since no other scheme matches it) is resolved to its file there.
"""
import hashlib
import inspect
import pickle
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List

import numpy as np
import torch

WRITTEN_FOR = {'mmengine': '0.10.7', 'torch': '2.13', 'numpy': '1.26'}
#: sha256 of ``inspect.getsource(mmengine.runner.checkpoint.load_from_local)`` in mmengine 0.10.7.
LOAD_FROM_LOCAL_SHA256 = 'aa24a2a99a65f3f6bfda9e682038e22fda6b6ebf0ef5b8fd751d9e7f8c741645'
#: the common compat fields (``tests/test_compat.py``)
TESTED_VERSIONS = ('0.10.7', )
FINGERPRINTS = {
    'mmengine.runner.checkpoint.load_from_local': '7f682d985c3d8d84a9585bbe30c99c1d01693dc5',
    'mmengine.runner.checkpoint.CheckpointLoader._get_checkpoint_loader':
    '420b5ff5c7ba15a32ab69fcd2022762d9b23a279',
}


def _source_sha256(func: Any) -> str:
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()


#: the statistics methods HistoryBuffer registers for itself (``_set_default_statistics``)
_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_method(owner: Any, name: str) -> Any:
    """``getattr`` for the weights-only unpickler: only ``HistoryBuffer``'s own functions."""
    from mmengine.logging import HistoryBuffer
    names = _STATISTICS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in names and callable(vars(HistoryBuffer).get(name)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights-only load: getattr({getattr(owner, "__name__", type(owner).__name__)}, '
        f'{name!r}) is not an allowed HistoryBuffer method')


def _numpy_globals() -> List[Any]:
    if int(np.__version__.split('.')[0]) >= 2:  # numpy 2 renamed numpy.core to numpy._core
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray  # type: ignore[no-redef]
    found: List[Any] = [np.ndarray, np.dtype]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # either name in files
        # private numpy functions that pickled arrays and scalars name
        found.append((multiarray._reconstruct,  # type: ignore[attr-defined]
                      f'{module}._reconstruct'))
        found.append((multiarray.scalar, f'{module}.scalar'))  # type: ignore[attr-defined]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles some dtypes by class
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return found


def runner_checkpoint_globals() -> List[Any]:
    """What an MMEngine training checkpoint needs beyond tensors (see the module docstring)."""
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')] + _numpy_globals()


@contextmanager
def allow_runner_checkpoint_globals() -> Iterator[None]:
    """``torch.serialization.safe_globals`` with :func:`runner_checkpoint_globals`."""
    with torch.serialization.safe_globals(runner_checkpoint_globals()):
        yield


def checkpoint_schemes() -> Dict[str, Callable[..., Any]]:
    """MMEngine's loaders by path prefix (the private ``CheckpointLoader._schemes``, read by
    ``_get_checkpoint_loader``; ``''`` is local files), the dict itself: swap entries in place
    and restore them."""
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader._schemes


@contextmanager
def local_checkpoint_loader(load: Callable[..., Any]) -> Iterator[None]:
    """MMEngine loads local checkpoints with ``load(filename, map_location=None)`` while
    active (``utils.checkpoint.safe_runner_checkpoints`` passes mmattnvis' safe reader)."""
    schemes = checkpoint_schemes()
    original = schemes.get('')
    schemes[''] = load
    try:
        yield
    finally:
        if original is None:
            schemes.pop('', None)
        else:
            schemes[''] = original
