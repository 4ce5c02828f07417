"""Atomic writes that never follow a link planted in the output directory.

Every file mmattnvis writes (images, CSV and markdown tables) goes through
:func:`write_bytes_atomic`: the bytes go to a *new* temporary file next to the target, created
with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (so an existing file or symbolic link of that name is
never opened), and the temporary file is renamed over the target. ``rename`` replaces a link at
the target path itself; the file a planted link points to is never touched, and a failure leaves
no partial file.
"""
import os
import os.path as osp
import secrets

from .errors import UserInputError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(
    os, 'O_BINARY', 0)


def write_bytes_atomic(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns ``path``.

    Raises:
        UserInputError: The directory cannot be created or written, or ``path`` is a directory.
    """
    out_dir = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise UserInputError(f'cannot create output directory {out_dir}: '
                             f'{err.strerror or err}') from None
    if osp.isdir(path) and not osp.islink(path):
        raise UserInputError(f'cannot write {path}: a directory of that name exists')
    tmp = None
    for _ in range(16):  # a clash with an existing name is retried with a new one
        candidate = osp.join(out_dir, f'.tmp-{secrets.token_hex(8)}-{osp.basename(path)}')
        try:
            fd = os.open(candidate, _FLAGS, 0o666)  # the umask applies, as for open()
        except FileExistsError:
            continue
        except OSError as err:
            raise UserInputError(f'cannot write into {out_dir}: {err.strerror or err}') from None
        tmp = candidate
        break
    if tmp is None:
        raise UserInputError(f'cannot create a temporary file in {out_dir}')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise UserInputError(f'cannot write {path}: {err.strerror or err}') from None
        raise
    return path


def write_text_atomic(path: str, text: str, encoding: str = 'utf-8') -> str:
    """:func:`write_bytes_atomic` for text (written as given: no newline translation)."""
    return write_bytes_atomic(path, text.encode(encoding))
