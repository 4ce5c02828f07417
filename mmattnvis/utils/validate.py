"""Command-line option checks, one rule per option, shared by every tool.

Each tool calls :func:`validate_cli_args` right after parsing, before any model work: the value of
every option it has that appears in :data:`OPTION_RULES` is checked by the same rule,
``--device`` is parsed and checked for availability, and ``--out-dir`` / ``--work-dir`` are
checked to be usable directories. A bad value is a :class:`UserInputError` (one ``error:``
line, exit code 2).
"""
import argparse
import math
import os
import os.path as osp
import secrets
from typing import Callable, Dict, Optional

from .errors import UserInputError


def _number(flag: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f'{flag} must be a number, got {value!r}') from None
    if not math.isfinite(number):
        raise UserInputError(f'{flag} must be a finite number, got {value!r}')
    return number


def check_within(flag: str, value, low: float, high: float) -> None:
    """``low <= value <= high`` and finite (``nan`` and ``inf`` are refused)."""
    number = _number(flag, value)
    if not low <= number <= high:
        raise UserInputError(f'{flag} must be within [{low:g}, {high:g}], got {value!r}')


def check_at_least(flag: str, value, low: float) -> None:
    """``value >= low`` and finite."""
    number = _number(flag, value)
    if number < low:
        raise UserInputError(f'{flag} must be >= {low:g}, got {value!r}')


def _within(low: float, high: float) -> Callable[[str, object], None]:
    return lambda flag, value: check_within(flag, value, low, high)


def _at_least(low: float) -> Callable[[str, object], None]:
    return lambda flag, value: check_at_least(flag, value, low)


#: option (argparse ``dest``) -> rule; a tool that has the option gets the rule.
OPTION_RULES: Dict[str, Callable[[str, object], None]] = {
    'score_thr': _within(0.0, 1.0),
    'alpha': _within(0.0, 1.0),
    'iou_thr': _within(0.0, 1.0),
    'tolerance': _at_least(0.0),
    'max_images': _at_least(0),  # 0: all images
    'preview_depth': _at_least(0),
    'cell_width': _at_least(32),  # narrower cells cannot hold their labels
    'batch_size': _at_least(1),
    'max_queries': _at_least(1),
    'steps': _at_least(2),
}


def check_heads(heads, n_heads: Optional[int] = None, flag: str = '--heads',
                negative: bool = True) -> None:
    """Head indices are integers and, when the number of heads is known, exist
    (``-n_heads <= h < n_heads``; ``0 <= h < n_heads`` when ``negative`` is false, as on the
    command line)."""
    for h in heads or []:
        if isinstance(h, bool) or not isinstance(h, int):
            raise UserInputError(f'{flag} takes integer head indices, got {h!r}')
        if n_heads is not None and not (-n_heads if negative else 0) <= h < n_heads:
            raise UserInputError(f'head {h} does not exist; this attention has heads '
                                 f'0..{n_heads - 1}'
                                 + ('' if negative or h >= 0 else
                                    f' ({flag} counts from 0; negative indices are refused)'))


def check_device(device: str) -> str:
    """The torch device string to use for ``--device``.

    ``auto`` (the tools' default) is ``cuda:0`` when CUDA is available, else ``cpu``; an explicit
    ``cuda`` / ``cuda:N`` falls back to ``cpu`` on a machine without CUDA with one ``warning:``
    line on stderr; an unparsable string, a device index that does not exist and a device type
    that is not available are one-line errors.
    """
    import torch
    text = str(device).strip()
    if text.lower() == 'auto':  # the tools' default: a GPU when there is one, silently
        return 'cuda:0' if torch.cuda.is_available() else 'cpu'
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise UserInputError(f'--device {device!r} is not a device; use cpu, cuda or cuda:N'
                             ) from None
    if dev.type == 'cpu':
        return 'cpu' if dev.index is None else str(dev)
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            import sys
            print(f'warning: --device {device}: CUDA is not available on this machine; running '
                  'on the CPU', file=sys.stderr)
            return 'cpu'
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise UserInputError(f'--device {device}: this machine has {count} CUDA device(s) '
                                 f'(cuda:0..cuda:{count - 1})')
        return str(dev)
    if dev.type == 'meta':
        raise UserInputError(f'--device {device}: the meta device holds no data; use cpu or cuda')
    backend = getattr(torch, dev.type, None)
    available = getattr(backend, 'is_available', None)
    if not callable(available) or not available():
        raise UserInputError(f'--device {device}: {dev.type} is not available on this machine; '
                             'use cpu or cuda')
    return str(dev)


def check_out_dir(path: Optional[str], flag: str = '--out-dir') -> None:
    """Whether files can be written under ``path`` (created later, on the first write).

    Refused: an existing file, a path under a file, a directory (or nearest existing parent)
    that cannot be written. Nothing is created: writability is probed with a temporary file in
    the nearest existing directory, removed at once.
    """
    if path is None or path == '':
        return
    path = osp.abspath(osp.expanduser(str(path)))
    if osp.exists(path) and not osp.isdir(path):
        raise UserInputError(f'{flag} {path} is an existing file, not a directory')
    existing = path
    while not osp.exists(existing):
        if osp.lexists(existing):
            raise UserInputError(f'{flag} {path}: {existing} is a broken symbolic link')
        parent = osp.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not osp.isdir(existing):
        raise UserInputError(f'{flag} {path} lies under {existing}, which is a file')
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_create_in(existing):
        what = 'it' if existing == path else f'its parent {existing}'
        raise UserInputError(f'{flag} {path} is not writable ({what} is read-only or lacks '
                             'write permission)')


def _can_create_in(directory: str) -> bool:
    probe = osp.join(directory, f'.mmattnvis-probe-{secrets.token_hex(6)}')
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    try:
        os.remove(probe)
    except OSError:
        pass
    return True


def validate_cli_args(args: argparse.Namespace) -> argparse.Namespace:
    """Check every option of ``args`` that has a rule; returns ``args`` with ``device``
    replaced by the device to use. Call before any model work."""
    for dest, rule in OPTION_RULES.items():
        value = getattr(args, dest, None)
        if value is not None:
            rule('--' + dest.replace('_', '-'), value)
    if getattr(args, 'heads', None) is not None:
        check_heads(args.heads)
    if getattr(args, 'device', None) is not None:
        args.device = check_device(args.device)
    for dest in ('out_dir', 'work_dir', 'save_results', 'report'):
        if getattr(args, dest, None):
            check_out_dir(getattr(args, dest), '--' + dest.replace('_', '-'))
    return args


def _cfg_action_base():
    from mmengine.config import DictAction
    return DictAction


class CfgOptionsAction(_cfg_action_base()):  # type: ignore[misc]
    """MMEngine's ``DictAction`` for ``--cfg-options`` that reports an item without ``=`` (or
    with an empty key) as one argparse error line instead of a ``ValueError`` traceback."""

    def __call__(self, parser, namespace, values, option_string=None):
        for kv in values or []:
            key, sep, _ = str(kv).partition('=')
            if not sep or not key.strip():
                raise argparse.ArgumentError(
                    self, f'expected key=value, got {kv!r} (e.g. model.test_cfg.score_thr=0.5)')
        try:
            super().__call__(parser, namespace, values, option_string)
        except (AssertionError, RecursionError, ValueError, TypeError, SyntaxError) as err:
            # DictAction parses lists/tuples itself; unbalanced or unparsable values fail deep
            # inside it (an AssertionError, or a RecursionError for some nestings)
            why = str(err).splitlines()[0][:120] if str(err).strip() else type(err).__name__
            raise argparse.ArgumentError(
                self, f'cannot parse {" ".join(map(str, values))!r} ({why}); values are '
                'numbers, strings, or [..]/(..) lists of them') from None

