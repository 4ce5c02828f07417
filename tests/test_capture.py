"""Capture: names without eval, outputs of every kind, every image kept, hooks always removed."""
import pytest
import torch
import torch.nn as nn

from mmattnvis.capture import FeatureCapture, canonical_name, resolve_module, split_module_name
from mmattnvis.utils.errors import UserInputError

from conftest import hook_count


class Neck(nn.Module):

    def __init__(self):
        super().__init__()
        self.out_layers = nn.ModuleList([nn.Conv2d(4, 4, 1) for _ in range(3)])

    def forward(self, feats):
        return tuple(layer(f) for layer, f in zip(self.out_layers, feats))


class Backbone(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
        self.stage1 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.stage2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x):
        x = self.stem(x)
        a = self.stage1(x)
        b = self.stage2(a)
        return x, a, b


class DictHead(nn.Module):

    def __init__(self):
        super().__init__()
        self.cls = nn.Conv2d(4, 2, 1)  # shared over levels: called once per level

    def forward(self, feats):
        return {'cls': [self.cls(f) for f in feats], 'n': len(feats)}


class Toy(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.neck = Neck()
        self.head = DictHead()

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))


def test_name_forms_resolve_without_eval():
    model = Toy()
    assert split_module_name('neck.out_layers[2]') == ['neck', 'out_layers', '2']
    assert resolve_module(model, 'neck.out_layers[2]') is model.neck.out_layers[2]
    assert resolve_module(model, 'neck.out_layers.2') is model.neck.out_layers[2]
    assert resolve_module(model, 'neck.out_layers[-1]') is model.neck.out_layers[2]
    assert resolve_module(model, 'backbone.stem.0') is model.backbone.stem[0]
    assert resolve_module(model, '') is model
    assert canonical_name(model, 'neck.out_layers[-1]') == 'neck.out_layers.2'
    # something eval() would run is just an unknown name
    with pytest.raises(UserInputError):
        resolve_module(model, '__class__.__init__')


def test_unknown_name_is_one_line_with_closest_names():
    model = Toy()
    with pytest.raises(UserInputError) as err:
        resolve_module(model, 'backbone.stage3')
    msg = str(err.value)
    assert '\n' not in msg
    assert "'backbone' has no submodule 'stage3'" in msg
    assert 'backbone.stage1' in msg and 'backbone.stage2' in msg
    with pytest.raises(UserInputError, match='closest: neck'):
        FeatureCapture(model, ['nek'])
    with pytest.raises(UserInputError, match='malformed'):
        resolve_module(model, 'neck..out_layers')


def test_tuple_dict_and_repeated_calls_are_named():
    model = Toy()
    x = torch.rand(3, 3, 16, 20)
    with FeatureCapture(model, ['backbone', 'neck', 'head', 'head.cls', 'backbone.stage2']) as cap:
        model(x)
    fm = cap.featmaps()
    assert [k for k in fm if k.startswith('backbone.') and k.count('.') == 1] == [
        'backbone.0', 'backbone.1', 'backbone.2', 'backbone.stage2']
    assert fm['backbone.0'].shape == (3, 4, 16, 20)
    assert fm['backbone.2'].shape == (3, 4, 4, 5)
    assert [k for k in fm if k.startswith('neck')] == ['neck.0', 'neck.1', 'neck.2']
    assert fm['head.cls.1'].shape == (3, 2, 8, 10)
    assert ['head.cls#0', 'head.cls#1', 'head.cls#2'] == [k for k in fm
                                                          if k.startswith('head.cls#')]
    # every image of the batch is kept and equals the real output
    assert torch.equal(fm['backbone.stage2'], model.backbone.stage2(model.backbone.stage1(
        model.backbone.stem(x))).detach())


def test_captured_tensor_is_not_changed_by_later_inplace_ops():
    model = Toy()
    x = torch.randn(1, 3, 8, 8)
    with FeatureCapture(model, ['backbone.stem.0']) as cap:
        model(x)
    conv_out = model.backbone.stem[0](x)
    assert (cap.featmaps()['backbone.stem.0'] < 0).any()  # ReLU(inplace) did not touch the copy
    assert torch.allclose(cap.featmaps()['backbone.stem.0'], conv_out)


def test_input_capture_gets_multilevel_head_inputs():
    model = Toy()
    with FeatureCapture(model, ['head'], what='input') as cap:
        model(torch.rand(2, 3, 16, 16))
    assert list(cap.featmaps()) == ['head.0', 'head.1', 'head.2']


def test_hooks_removed_on_exit_and_on_exception():
    model = Toy()
    before = hook_count(model)
    with FeatureCapture(model, ['backbone', 'neck.out_layers[0]']):
        assert hook_count(model) == before + 2
    assert hook_count(model) == before
    with pytest.raises(RuntimeError):
        with FeatureCapture(model, ['backbone', 'neck']):
            model(torch.rand(1, 5, 16, 16))  # wrong channel count raises inside the forward
    assert hook_count(model) == before


def test_capture_does_not_change_outputs():
    torch.manual_seed(0)
    model = Toy().eval()
    x = torch.rand(2, 3, 16, 16)
    ref = model(x)
    with FeatureCapture(model, ['backbone', 'neck', 'head.cls']):
        out = model(x)
    for a, b in zip(ref['cls'], out['cls']):
        assert torch.equal(a, b)


def test_keep_false_records_nothing_until_enabled():
    model = Toy()
    cap = FeatureCapture(model, ['neck'], keep=False).attach()
    try:
        model(torch.rand(1, 3, 8, 8))
        assert cap.featmaps() == {}
        cap.enable()
        model(torch.rand(1, 3, 8, 8))
        assert len(cap.featmaps()) == 3
        cap.clear()
        assert cap.featmaps() == {}
        assert cap.missing() == ['neck']
    finally:
        cap.remove()
    assert hook_count(model) == 0
