"""The patches in mmattnvis/compat/ still fit the library code they were written for."""
import inspect

import mmengine
import torch

from mmattnvis.compat import mmengine_checkpoint as compat


def test_mmengine_local_loader_unchanged():
    """``safe_runner_checkpoints`` replaces MMEngine's local loader; if MMEngine changes that
    function (e.g. passes ``weights_only`` itself), this fails and the patch must be revisited."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
    assert mmengine.__version__ == compat.WRITTEN_FOR['mmengine']
    assert compat._source_sha256(load_from_local) == compat.LOAD_FROM_LOCAL_SHA256
    assert CheckpointLoader._schemes[''] is load_from_local
    assert 'checkpoint_loader(filename, map_location)' in inspect.getsource(
        CheckpointLoader.load_checkpoint)


def test_history_buffer_state_is_what_the_allow_list_expects():
    """HistoryBuffer pickles its statistics methods (hence the restricted ``getattr``)."""
    from mmengine.logging import HistoryBuffer
    assert torch.__version__.startswith(compat.WRITTEN_FOR['torch'])
    state = HistoryBuffer([1.0], [1]).__getstate__()
    assert set(state['statistics_methods']) >= {'min', 'max', 'current', 'mean'}
    for name, fn in state['statistics_methods'].items():
        assert compat._history_buffer_method(HistoryBuffer, name) is fn


def test_restricted_getattr_refuses_everything_else(tmp_path):
    import pickle

    import pytest
    from mmengine.logging import HistoryBuffer
    with pytest.raises(pickle.UnpicklingError):
        compat._history_buffer_method(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        compat._history_buffer_method(torch, 'load')
    # a weights-only load of a history buffer round-trips inside the context, not outside
    path = tmp_path / 'hb.pth'
    buf = HistoryBuffer([1.0, 2.0], [1, 1])
    torch.save({'hb': buf}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with compat.allow_runner_checkpoint_globals():
        loaded = torch.load(path, weights_only=True)['hb']
    assert loaded.mean() == buf.mean()
