"""Detach a hook's capture when the runner's val/test loop raises.

MMEngine calls ``after_val`` / ``after_test`` / ``after_run`` only when a loop finishes; a failing
loop would leave forward hooks on the model. :class:`LoopGuard` wraps ``run`` on the runner's own
loop *instances* (see :mod:`mmattnvis.compat.mmengine_loop`) and removes the wrappers again.
"""
from typing import Callable, List

from mmengine.runner import BaseLoop

from ..compat.mmengine_loop import unwrap_loop_run, wrap_loop_run


class LoopGuard:
    """The loops whose ``run`` calls ``on_error()`` before re-raising (each wrapped once)."""

    def __init__(self) -> None:
        self.loops: List[BaseLoop] = []

    def guard(self, runner, on_error: Callable[[], None]) -> None:
        """Wrap the runner's val and test loops that are built (never builds one)."""
        for attr in ('_test_loop', '_val_loop'):
            loop = getattr(runner, attr, None)
            if isinstance(loop, BaseLoop) and loop not in self.loops:
                wrap_loop_run(loop, on_error)
                self.loops.append(loop)

    def release(self) -> None:
        """Unwrap every guarded loop: their class's ``run`` is visible again."""
        for loop in self.loops:
            unwrap_loop_run(loop)
        self.loops = []
