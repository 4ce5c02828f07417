"""The lifecycle every capture shares: hooks attached on entry, always detached on exit."""
from typing import Any, List, TypeVar

from torch.utils.hooks import RemovableHandle

C = TypeVar('C', bound='CaptureBase')


class CaptureBase:
    """Base of the capture classes: a context manager that owns the hooks it registers.

    Subclasses register their hooks in :meth:`_attach`, keeping the handles in
    ``self._handles``, and undo anything else they changed on the model in :meth:`_restore`.
    :meth:`attach` is idempotent; if it fails half-way, what was attached is removed before the
    error propagates. :meth:`remove` (and leaving the ``with`` block, also by an exception)
    detaches every hook; what was recorded stays available.
    """

    def __init__(self) -> None:
        self._handles: List[RemovableHandle] = []

    def _attach(self) -> None:
        """Register the hooks (subclasses); append each handle to ``self._handles``."""
        raise NotImplementedError

    def _restore(self) -> None:
        """Undo what attaching changed besides the hooks (subclasses; called by :meth:`remove`)."""

    def attach(self: C) -> C:
        """Register the hooks (idempotent); :meth:`remove` takes them all off."""
        if self._handles:
            return self
        try:
            self._attach()
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        """Detach every hook this capture registered (the recorded tensors are kept)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._restore()

    @property
    def attached(self) -> bool:
        """Whether the hooks are registered."""
        return bool(self._handles)

    def __enter__(self: C) -> C:
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.remove()


__all__ = ['CaptureBase']
