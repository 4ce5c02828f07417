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


# -- the weights-only loading of MMEngine runner checkpoints -------------------------------
import inspect  # noqa: E402

import mmengine  # noqa: E402
import torch  # noqa: E402

from mmattnvis.compat import mmengine_checkpoint as ckpt_compat  # noqa: E402


def test_mmengine_local_loader_unchanged():
    """``safe_runner_checkpoints`` replaces MMEngine's local loader; if MMEngine changes that
    function (e.g. passes ``weights_only`` itself), this fails and the patch must be revisited."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
    assert mmengine.__version__ == ckpt_compat.WRITTEN_FOR['mmengine']
    assert ckpt_compat._source_sha256(load_from_local) == ckpt_compat.LOAD_FROM_LOCAL_SHA256
    assert CheckpointLoader._schemes[''] is load_from_local
    assert 'checkpoint_loader(filename, map_location)' in inspect.getsource(
        CheckpointLoader.load_checkpoint)


def test_history_buffer_state_is_what_the_allow_list_expects():
    """HistoryBuffer pickles its statistics methods (hence the restricted ``getattr``)."""
    from mmengine.logging import HistoryBuffer
    assert torch.__version__.startswith(ckpt_compat.WRITTEN_FOR['torch'])
    state = HistoryBuffer([1.0], [1]).__getstate__()
    assert set(state['statistics_methods']) >= {'min', 'max', 'current', 'mean'}
    for name, fn in state['statistics_methods'].items():
        assert ckpt_compat._history_buffer_method(HistoryBuffer, name) is fn


def test_restricted_getattr_refuses_everything_else(tmp_path):
    import pickle

    import pytest
    from mmengine.logging import HistoryBuffer
    with pytest.raises(pickle.UnpicklingError):
        ckpt_compat._history_buffer_method(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        ckpt_compat._history_buffer_method(torch, 'load')
    # a weights-only load of a history buffer round-trips inside the context, not outside
    path = tmp_path / 'hb.pth'
    buf = HistoryBuffer([1.0, 2.0], [1, 1])
    torch.save({'hb': buf}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with ckpt_compat.allow_runner_checkpoint_globals():
        loaded = torch.load(path, weights_only=True)['hb']
    assert loaded.mean() == buf.mean()
