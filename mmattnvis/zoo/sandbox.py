"""The download guard: building a model must not fetch weights."""
import contextlib
import os
from typing import Any, Dict, Iterator, List, Tuple

from ..compat.mmengine_checkpoint import checkpoint_schemes
from .classify import DownloadAttempted


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Within the block, every weight download raises :class:`DownloadAttempted` (cached files
    included); everything patched is restored on exit."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        url = args[0] if args else kwargs.get('url', kwargs.get('filename', '?'))
        raise DownloadAttempted(f'tried to download {url} while building the model')

    import urllib.request

    import torch.hub
    patches: List[Tuple[Any, str, Any]] = [(torch.hub, 'load_state_dict_from_url', refuse),
                                           (torch.hub, 'download_url_to_file', refuse),
                                           (urllib.request, 'urlopen', refuse)]
    schemes: Dict[str, Any] = {}
    try:
        schemes = checkpoint_schemes()
    except ImportError:
        pass
    saved_schemes = dict(schemes)
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    saved_env = {k: os.environ.get(k) for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')}
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        for prefix in saved_schemes:
            if prefix != '':  # '' is the local-file loader
                schemes[prefix] = lambda filename, *a, **k: refuse(filename)
        os.environ.update({k: '1' for k in saved_env})
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)
        schemes.update(saved_schemes)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
