"""Image decoding that notices the decoder's own warnings.

libjpeg (inside OpenCV, which ``mmcv.imread`` / ``mmcv.imfrombytes`` use) decodes a JPEG whose
header is valid but whose data is corrupt into a picture of garbage and only prints a warning on
the process's C ``stderr`` (e.g. ``Invalid SOS parameters for sequential JPEG``, ``Corrupt JPEG
data: bad Huffman code``); OpenCV returns the image as if nothing happened. :func:`decode_checked`
redirects file descriptor 2 into a temporary file while one decode runs, reads what the decoder
wrote, and reports a libjpeg corrupt-data warning as the reason the image is unreadable. Anything
else written meanwhile (another library's message) is written back to ``stderr`` unchanged.

The capture is deterministic for the decoding thread: libjpeg writes its warning synchronously,
before ``imdecode`` returns, and the redirection spans exactly that call.
"""
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

#: libjpeg's warnings (``jerror.h``, ``JWRN_*``) that mean the pixel data is damaged: the
#: decoded picture is (partly) garbage. Its other warnings (an unknown JFIF revision, an Adobe
#: colour-transform code) are about metadata and are not treated as damage.
JPEG_DAMAGE = (
    'Corrupt JPEG data',  # bad Huffman / arithmetic code, premature end of a segment, ...
    'Invalid SOS parameters',
    'Premature end of JPEG file',
    'Inconsistent progression sequence',
    'Application transferred too many scanlines',
)


@contextmanager
def captured_stderr_fd() -> Iterator[List[str]]:
    """Redirect file descriptor 2 (C-level ``stderr``) while the block runs; the list it yields
    receives the lines written to it. Without a usable descriptor 2 nothing is captured."""
    lines: List[str] = []
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    try:
        saved = os.dup(2)
    except OSError:
        yield lines
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode('utf-8', 'replace').splitlines())


def jpeg_damage(lines: List[str]) -> Optional[str]:
    """The first libjpeg corrupt-data warning among ``lines``, or ``None``."""
    for line in lines:
        if any(mark in line for mark in JPEG_DAMAGE):
            return line.strip()
    return None


def decode_checked(decode: Callable[[], Optional[np.ndarray]]
                   ) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Run ``decode`` (e.g. ``lambda: mmcv.imread(path)``) and return ``(image, problem)``.

    ``problem`` is ``None`` for a good image; ``'corrupt or truncated image data'`` when decoding
    failed or gave an empty image; ``'corrupt JPEG data (libjpeg: ...)'`` when an image was
    decoded but the decoder warned that its data is damaged (the image is then ``None``).
    """
    img: Optional[np.ndarray] = None
    with captured_stderr_fd() as lines:
        try:
            img = decode()
        except Exception:
            img = None
    damage = jpeg_damage(lines)
    other = [line for line in lines
             if line.strip() and not any(mark in line for mark in JPEG_DAMAGE)]
    if other:  # not ours to swallow
        sys.stderr.write('\n'.join(other) + '\n')
        sys.stderr.flush()
    if img is None or img.size == 0:
        return None, 'corrupt or truncated image data'
    if damage is not None:  # decoded, but into garbage
        return None, f'corrupt JPEG data (libjpeg: {damage})'
    return img, None
