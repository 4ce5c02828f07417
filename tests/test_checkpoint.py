"""Safe checkpoint loading: weights-only by default, clear one-line errors otherwise."""
import collections
import os.path as osp

import pytest
import torch
import torch.nn as nn

from mmattnvis.utils.checkpoint import CheckpointError, load_checkpoint_safely, read_checkpoint


class Tiny(nn.Module):

    def __init__(self, out=4):
        super().__init__()
        self.conv = nn.Conv2d(3, out, 3)
        self.bn = nn.BatchNorm2d(out)


class NotAllowed:
    """A custom class a weights-only load refuses."""

    def __init__(self):
        self.x = 1


def _save(obj, tmp_path, name='ckpt.pth'):
    path = str(tmp_path / name)
    torch.save(obj, path)
    return path


def test_plain_state_dict_loads(tmp_path):
    src, dst = Tiny(), Tiny()
    path = _save(src.state_dict(), tmp_path)
    meta = load_checkpoint_safely(dst, path)
    assert meta == {}
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k])


def test_openmmlab_style_with_meta_and_module_prefix(tmp_path):
    src, dst = Tiny(), Tiny()
    state = collections.OrderedDict(('module.' + k, v) for k, v in src.state_dict().items())
    path = _save({'state_dict': state, 'meta': {'classes': ['a', 'b'], 'epoch': 3}}, tmp_path)
    meta = load_checkpoint_safely(dst, path)
    assert meta['classes'] == ['a', 'b']
    assert torch.equal(dst.conv.weight, src.conv.weight)


def test_pickled_object_needs_explicit_opt_in(tmp_path):
    src, dst = Tiny(), Tiny()
    path = _save({'state_dict': src.state_dict(), 'meta': {'obj': NotAllowed()}}, tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_safely(dst, path)
    msg = str(err.value)
    assert '--unsafe-load' in msg and '\n' not in msg
    assert 'NotAllowed' in msg
    # The weights were not touched by the refused load.
    assert not torch.equal(dst.conv.weight, src.conv.weight)
    load_checkpoint_safely(dst, path, unsafe=True)
    assert torch.equal(dst.conv.weight, src.conv.weight)


def test_missing_corrupt_empty_files(tmp_path):
    model = Tiny()
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        load_checkpoint_safely(model, str(tmp_path / 'nope.pth'))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'):
        load_checkpoint_safely(model, str(empty))
    good = _save(model.state_dict(), tmp_path)
    with open(good, 'rb') as f:
        data = f.read()
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='corrupt') as err:
        load_checkpoint_safely(model, str(broken))
    assert '\n' not in str(err.value)
    text = tmp_path / 'text.pth'
    text.write_text('this is not a checkpoint')
    with pytest.raises(CheckpointError, match='corrupt'):
        read_checkpoint(str(text))
    with pytest.raises(CheckpointError, match='URL'):
        read_checkpoint('https://example.invalid/x.pth')


def test_keys_that_do_not_match_are_listed(tmp_path):
    path = _save({'state_dict': Tiny(out=8).state_dict()}, tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_safely(Tiny(out=4), path)
    msg = str(err.value)
    assert 'shape mismatches' in msg and 'conv.weight' in msg

    other = nn.Sequential(nn.Linear(2, 2))
    path2 = _save(other.state_dict(), tmp_path, 'other.pth')
    with pytest.raises(CheckpointError, match='does not fit this config'):
        load_checkpoint_safely(Tiny(), path2)

    partial = {k: v for k, v in Tiny().state_dict().items() if not k.startswith('bn.')}
    partial['extra.weight'] = torch.zeros(1)
    path3 = _save(partial, tmp_path, 'partial.pth')
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_safely(Tiny(), path3)
    msg = str(err.value)
    assert 'missing keys' in msg and 'bn.weight' in msg
    assert 'unexpected keys' in msg and 'extra.weight' in msg
    # Non-strict loads what fits and reports the rest.
    warnings = []

    class Log:

        def warning(self, m):
            warnings.append(m)

    dst = Tiny()
    load_checkpoint_safely(dst, path3, strict=False, logger=Log())
    assert warnings and 'missing keys' in warnings[0]
    assert torch.equal(dst.conv.weight, partial['conv.weight'])


def test_shared_yolov5_loads_weights_only(yolov5_real):
    # The fixture itself goes through load_checkpoint_safely with weights_only=True.
    assert yolov5_real.dataset_meta['classes'][16] == 'dog'
    assert osp.basename(yolov5_real.cfg.filename).startswith('yolov5_n')
