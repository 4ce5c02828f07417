"""Each patch in mmattnvis.compat was written for a library version and for the code it relies on;
these tests fail loudly when the installed library changes that code."""
import importlib
import pkgutil

import pytest

import mmattnvis.compat as compat

MODULES = [m.name for m in pkgutil.iter_modules(compat.__path__)]
PACKAGE_OF = {'mmengine': 'mmengine', 'mmdet': 'mmdet', 'mmyolo': 'mmyolo', 'torch': 'torch',
              'pytorch_grad_cam': 'grad-cam'}


@pytest.mark.parametrize('name', MODULES)
def test_patched_code_is_what_the_patch_was_written_for(name):
    mod = importlib.import_module(f'mmattnvis.compat.{name}')
    assert mod.FINGERPRINTS, f'{name} names no code it relies on'
    for qualname, expected in mod.FINGERPRINTS.items():
        got = compat.source_fingerprint(qualname)
        assert got == expected, (
            f'{qualname} changed (sha1 {got}, patch written for {expected}, versions '
            f'{mod.TESTED_VERSIONS}): re-check mmattnvis/compat/{name}.py')


@pytest.mark.parametrize('name', MODULES)
def test_installed_version_is_a_tested_one(name):
    from importlib.metadata import version
    mod = importlib.import_module(f'mmattnvis.compat.{name}')
    root = next(iter(mod.FINGERPRINTS)).split('.')[0]
    assert version(PACKAGE_OF.get(root, root)) in mod.TESTED_VERSIONS


def test_loop_wrapper_detaches_and_restores():
    from mmengine.runner import BaseLoop

    from mmattnvis.compat.mmengine_loop import unwrap_loop_run, wrap_loop_run

    class Loop(BaseLoop):
        def __init__(self):
            self.calls = 0

        def run(self):
            self.calls += 1
            raise RuntimeError('x')

    loop, seen = Loop(), []
    wrap_loop_run(loop, lambda: seen.append(1))
    wrap_loop_run(loop, lambda: seen.append(2))  # wrapping twice is a no-op
    with pytest.raises(RuntimeError):
        loop.run()
    assert seen == [1] and loop.calls == 1
    unwrap_loop_run(loop)
    assert 'run' not in loop.__dict__
