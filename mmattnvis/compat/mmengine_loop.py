"""Detach capture hooks when an MMEngine val/test loop raises.

MMEngine calls ``after_val`` / ``after_test`` / ``after_run`` only when a loop finishes; a failing
loop would leave forward hooks on the model. The hooks therefore wrap ``run`` on the runner's own
loop *instance* (an instance attribute; the class and other runners are untouched) and remove the
wrapper when the loop ends.

Relies on: ``ValLoop.run`` / ``TestLoop.run`` being looked up on the instance by ``Runner.val()`` /
``Runner.test()`` / ``EpochBasedTrainLoop.run`` (``self.runner.val_loop.run()``).
"""
from typing import Callable

from mmengine.runner import BaseLoop

#: mmengine versions this patch was written and tested for.
TESTED_VERSIONS = ('0.10.7', )
#: (qualified name, sha1 of ``inspect.getsource``) of what the patch relies on.
FINGERPRINTS = {
    'mmengine.runner.loops.ValLoop.run': 'b6365324b6461fe9dfa8bbf99c57009685121999',
    'mmengine.runner.loops.TestLoop.run': '3c8b92ddcaf6935c20179559ae5b653186e135ed',
}

_MARK = '_mmattnvis_original'


def wrap_loop_run(loop: BaseLoop, on_error: Callable[[], None]) -> None:
    """Make ``loop.run`` call ``on_error()`` before re-raising any exception."""
    if _MARK in getattr(loop.__dict__.get('run'), '__dict__', {}):
        return
    original = loop.run

    def run_and_detach(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except BaseException:
            on_error()
            raise

    setattr(run_and_detach, _MARK, original)
    loop.run = run_and_detach


def unwrap_loop_run(loop: BaseLoop) -> None:
    """Remove the wrapper: the class's ``run`` is visible again."""
    run = loop.__dict__.get('run')
    if run is not None and hasattr(run, _MARK):
        del loop.run
