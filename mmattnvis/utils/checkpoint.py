"""Checkpoint loading in one place, safe by default.

torch >= 2.6 unpickles with ``weights_only=True`` by default and MMEngine 0.10.7 does not pass the
flag, so every mmattnvis tool loads weights through :func:`load_checkpoint_safely`:

* ``weights_only=True`` unless the caller opts in with ``unsafe=True`` (``--unsafe-load``);
* a clear error for a missing file, a corrupt file, a checkpoint that needs full unpickling, and
  state-dict keys or shapes that do not match the model built from the config.
"""
import os
import os.path as osp
import pickle
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn

from ..compat.mmengine_checkpoint import allow_runner_checkpoint_globals, local_checkpoint_loader


class CheckpointError(RuntimeError):
    """A checkpoint could not be used; the message is one line and names the fix."""


_WRAPPER_PREFIXES = ('module.', '_orig_mod.')


def read_checkpoint(path: str, unsafe: bool = False, map_location: str = 'cpu') -> Any:
    """Read a checkpoint file without building anything.

    Args:
        path: File path.
        unsafe: Allow full unpickling (arbitrary code can run). Only for trusted files.
        map_location: Passed to :func:`torch.load`.

    Raises:
        CheckpointError: Missing, unreadable or corrupt file, or a file that needs ``unsafe``.
    """
    path = check_checkpoint_file(path)
    try:
        if unsafe:
            return torch.load(path, map_location=map_location, weights_only=False)
        with allow_runner_checkpoint_globals():  # MMEngine's own training checkpoints
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        msg = str(err)
        if not unsafe and 'Weights only load failed' in msg and _is_refused_global(msg):
            what = _unsupported_global(msg)
            raise CheckpointError(
                f'checkpoint {path} holds Python objects{what} that a weights-only load refuses; '
                'if you trust its source, re-run with --unsafe-load (unsafe=True), or re-save '
                'it as a plain state dict') from None
        raise CheckpointError(f'checkpoint {path} is corrupt or not a PyTorch file '
                              f'({_first_line(msg)})') from None
    except Exception as err:  # any decoding failure of the file itself means corrupt
        raise CheckpointError(f'checkpoint {path} is corrupt or not a PyTorch file '
                              f'({type(err).__name__}: {_first_line(str(err))})') from None


def check_checkpoint_file(path: str) -> str:
    """Cheap checks of a checkpoint path before any work (no unpickling): a local, non-empty
    file in one of torch.save's formats. Returns the path as a string.

    Raises:
        CheckpointError: A URL, a missing path, a directory, an empty file or another kind of
            file.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise CheckpointError(f'checkpoint path must be a file path, got {path!r}')
    path = str(path)
    if path.startswith(('http://', 'https://')):
        raise CheckpointError(f'checkpoint {path} is a URL; mmattnvis never downloads weights, '
                              'pass a local file')
    if not osp.exists(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    if osp.isdir(path):
        raise CheckpointError(f'checkpoint is a directory, not a file: {path}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint is empty (0 bytes): {path}')
    kind = _file_kind(path)
    if kind is None:
        raise CheckpointError(f'{path} is not a PyTorch checkpoint (neither the zip archive '
                              'torch.save writes nor a pickle: another kind of file, or corrupt)')
    return path


def extract_state_dict(ckpt: Any, path: str = '<checkpoint>') -> 'OrderedDict[str, torch.Tensor]':
    """The model state dict inside an OpenMMLab-style, plain or wrapped checkpoint."""
    if isinstance(ckpt, nn.Module):
        ckpt = ckpt.state_dict()
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(ckpt).__name__}, '
                              'not a state dict or a dict with a "state_dict" entry')
    for key in ('state_dict', 'model', 'model_state_dict'):
        if key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
            break
    state = OrderedDict()
    for k, v in ckpt.items():
        if not isinstance(v, torch.Tensor):
            continue
        for prefix in _WRAPPER_PREFIXES:
            if k.startswith(prefix):
                k = k[len(prefix):]
        state[k] = v
    if not state:
        raise CheckpointError(f'checkpoint {path} has no tensors in its state dict')
    return state


def match_state_dict(model: nn.Module,
                     state: Dict[str, torch.Tensor]) -> Tuple[List[str], List[str], List[str]]:
    """Keys missing from ``state``, keys unexpected by ``model`` and keys whose shapes differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not _is_buffer_stat(k)]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in state
        if k in own and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    return missing, unexpected, mismatched


def load_checkpoint_safely(model: nn.Module,
                           path: str,
                           unsafe: bool = False,
                           strict: bool = True,
                           map_location: str = 'cpu',
                           logger: Optional[Any] = None) -> Dict[str, Any]:
    """Load ``path`` into ``model`` and return the checkpoint's ``meta`` (possibly empty).

    Args:
        model: The model built from the config.
        path: Checkpoint file.
        unsafe: Opt in to full unpickling (``--unsafe-load``); default is weights-only.
        strict: Raise when keys or shapes differ (default). With ``False`` the matching keys
            are loaded and the rest is reported through ``logger``.
        map_location: Where tensors are loaded.
        logger: An MMLogger (or anything with ``warning``) for non-strict reports.

    Raises:
        CheckpointError: With a one-line message naming the problem and a few offending keys.
    """
    ckpt = read_checkpoint(path, unsafe=unsafe, map_location=map_location)
    state = extract_state_dict(ckpt, path)
    missing, unexpected, mismatched = match_state_dict(model, state)
    if not set(state) & set(model.state_dict()):
        raise CheckpointError(
            f'checkpoint {path} does not fit this config: none of its {len(state)} keys '
            f'(e.g. {_few(list(state))}) exist in the model (e.g. '
            f'{_few(list(model.state_dict()))}); check that CONFIG and CHECKPOINT belong together')
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys (e.g. {_few(missing)})')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys (e.g. {_few(unexpected)})')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatches (e.g. {_few(mismatched)})')
    if problems and strict:
        raise CheckpointError(f'checkpoint {path} does not match the config: '
                              + '; '.join(problems))
    if problems and logger is not None:
        logger.warning(f'checkpoint {path}: ' + '; '.join(problems))
    bad = {m.split(' ')[0] for m in mismatched}
    model.load_state_dict({k: v for k, v in state.items() if k not in bad}, strict=False)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    return meta if isinstance(meta, dict) else {}


def _is_buffer_stat(key: str) -> bool:
    # BatchNorm's counter is not saved by some converters; it does not change inference.
    return key.endswith('num_batches_tracked')


def _few(items: List[str], n: int = 3) -> str:
    shown = ', '.join(items[:n])
    return shown + (', ...' if len(items) > n else '')


@contextmanager
def safe_runner_checkpoints(unsafe: bool = False) -> Iterator[None]:
    """MMEngine loads local checkpoints through :func:`read_checkpoint` while active."""

    from .package_data import is_package_ref, resolve_checkpoint

    def load_from_local_safely(filename, map_location=None):
        if is_package_ref(str(filename)):  # load_from='mmattnvis::shapes/<name>.pth'
            filename = resolve_checkpoint(str(filename))
        return read_checkpoint(filename, unsafe=unsafe, map_location=map_location or 'cpu')

    with local_checkpoint_loader(load_from_local_safely):
        yield


def _first_line(msg: str) -> str:
    line = msg.strip().splitlines()[0] if msg.strip() else ''
    return line[:200]


def _file_kind(path: str) -> Optional[str]:
    """``'zip'`` (torch.save's format), ``'pickle'`` (legacy torch.save or a plain pickle) or
    ``None`` when the file is neither."""
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'PK\x03\x04':  # a zip archive (perhaps truncated: torch.load says so)
        return 'zip'
    # pickle protocol 2+ starts with PROTO (0x80) and the protocol number
    return 'pickle' if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else None


def _is_refused_global(msg: str) -> bool:
    """The weights-only loader refused a Python object (not a damaged file)."""
    low = msg.lower()
    return any(k in low for k in ('unsupported global', 'unrecognized function',
                                  'can only create new object', 'not an allowed',
                                  'is blocked'))


def _unsupported_global(msg: str) -> str:
    for line in msg.splitlines():
        if 'Unsupported global' in line:
            return ' (' + line.split('Unsupported global:')[-1].strip().split(' was not')[0] + ')'
    return ''
