"""Classification of what went wrong: ``skip`` for what this machine cannot have, else ``fail``."""
import re
from typing import List, Optional, Tuple


class NotADetector(Exception):
    """The config describes no buildable detector (tracker, re-ID, dataset fragment...)."""


class NeedsExternalData(Exception):
    """The config reads data this machine does not have (e.g. precomputed proposals)."""


class DownloadAttempted(RuntimeError):
    """Something tried to fetch weights from the network while the model was built."""


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
    cur: Optional[BaseException] = exc
    while cur is not None and all(cur is not e for e in seen):
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
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
