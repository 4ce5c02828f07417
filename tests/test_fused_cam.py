"""Fused multi-layer CAM / ODAM maps (issue 26): the fusion rules by hand, a constructed model
whose last layer's map is one cell while the fused map is not, one forward and one backward per
detection whatever the number of layers, and a single layer unchanged."""
import os.path as osp

import numpy as np
import pytest
import torch
from torch import nn

from mmattnvis.methods.cam import DetectionCAM, LayerFusion, fuse_layer_maps
from mmattnvis.methods.odam import ODAM
from mmattnvis.utils.errors import UserInputError

from conftest import ROOT, hook_count

CONFIG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
WEIGHTS = osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth')


def test_fusion_rules_by_hand():
    a = np.array([[[0.0, 1.0], [0.5, 0.0]]], np.float32)
    b = np.array([[[1.0, 1.0], [0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(fuse_layer_maps([a, b], 'mean'), [[[0.5, 1.0], [0.25, 0.0]]],
                               atol=1e-6)
    np.testing.assert_allclose(fuse_layer_maps([a, b], 'max'), [[[1.0, 1.0], [0.5, 0.0]]],
                               atol=1e-6)
    g = fuse_layer_maps([a, b], 'gmean')  # only where both layers show something
    assert g[0, 0, 1] == pytest.approx(1.0) and g[0, 0, 0] < 1e-3 and g[0, 1, 0] < 1e-3
    # One layer: every rule gives that layer's (min-max normalised) map back.
    for rule in ('mean', 'max', 'gmean'):
        np.testing.assert_allclose(fuse_layer_maps([a * 3 + 1], rule), a / a.max(), atol=1e-5)
    with pytest.raises(ValueError, match='unknown fusion'):
        fuse_layer_maps([a], 'median')
    with pytest.raises(UserInputError, match="unknown fusion 'sum'"):
        DetectionCAM('gradcam', ['neck'], fusion='sum')


def test_pooling_on_a_common_grid():
    from mmattnvis.methods.cam.fusion import pool_map
    one = np.zeros((1, 16, 16), np.float32)
    one[0, 5, 6] = 1.0  # one pixel: its 8 px cell holds its average, spread back bilinearly
    pooled = pool_map(one, 8)
    assert pooled.max() == pytest.approx(1.0, abs=1e-4) and (pooled >= 0.5).sum() > 16
    assert np.unravel_index(pooled.argmax(), (16, 16))[0] < 8  # still in its own cell's half
    np.testing.assert_array_equal(pool_map(one, 0), one)
    fine = np.zeros((1, 16, 16), np.float32)
    fine[0, 12, 12] = 1.0
    fused = fuse_layer_maps([one, fine], 'max', pool_stride=8)
    assert fused[0, 4, 4] > 0.5 and fused[0, 12, 12] > 0.5


def test_pooled_flat_top_is_decided_by_the_unpooled_maps():
    """A stride-32 layer upsampled bilinearly and pooled on 16 px cells: its peak lies on the
    corner of 4 pooling cells, which get equal averages, so the pooled map alone has a flat top
    a cell wide whose first pixel (the argmax) is the top's corner. On the COCO YOLOv5-n this put
    a kite's peak outside its box. The unpooled maps break the tie: the fused peak is the fine
    layer's peak inside the top, and the map away from the top is unchanged (within 1e-3)."""
    import cv2

    from mmattnvis.methods.cam.fusion import TIE_BREAK, pool_map
    coarse = np.zeros((4, 4), np.float32)
    coarse[1, 1] = 1.0  # stage 4: cell (1, 1) covers input pixels 32..63, centre 48
    up = cv2.resize(coarse, (128, 128), interpolation=cv2.INTER_LINEAR)[None]
    fine = np.zeros((1, 128, 128), np.float32)
    fine[0, 52, 44] = 1.0  # a small object's pixel, near the coarse peak
    pooled = pool_map(up, 16)[0]
    assert (pooled >= pooled.max() - 1e-6).sum() >= 64  # the flat top
    fused = fuse_layer_maps([up, fine], 'max', pool_stride=16)[0]
    assert np.unravel_index(int(fused.argmax()), fused.shape) == (52, 44)
    plain = np.maximum(pool_map(up, 16), pool_map(fine, 16))[0]
    plain /= plain.max()
    assert np.abs(fused - plain).max() <= 2 * TIE_BREAK


def test_pooled_max_ties_between_layers_go_to_where_the_layers_agree():
    """Pooled ``max`` fusion is 1 at every layer's own peak (each pooled map is normalised), so
    with several layers its top is a tie. A small box (12 x 12 px, under a 16 px cell) where three
    stride-8 layers peak, and a stride-32 layer peaking 6 px above it (COCO YOLOv5-n, kite.jpg's
    small person): the unpooled maximum favoured the coarse layer (its upsampled peak keeps 0.98,
    a stride-8 one 0.94) and put the fused peak outside the box; the layers' agreement decides
    it now, and the map stays the pooled max within the tie-break's weight."""
    import cv2

    from mmattnvis.methods.cam.fusion import TIE_BREAK, pool_map
    from mmattnvis.metrics import pointing_game

    def up(grid):  # as grad-cam brings a layer's normalised map to the input grid
        return cv2.resize(grid, (128, 128), interpolation=cv2.INTER_LINEAR)[None]

    coarse = np.zeros((4, 4), np.float32)
    coarse[1, 1] = 1.0  # stride 32: input pixels 32..63, centre (47.5, 47.5)
    layers = [up(coarse)]
    for spread in (0.0, 0.2, 0.4):  # three stride-8 layers, cell (7, 5): pixels 56..63, 40..47
        fine = np.zeros((16, 16), np.float32)
        fine[6:9, 4:7] = spread
        fine[7, 5] = 1.0
        layers.append(up(fine))
    box = (38, 54, 50, 66)
    assert layers[0].max() > max(f.max() for f in layers[1:])  # the resampling artefact
    assert not pointing_game(layers[0][0], box)  # the coarse layer's peak is outside the box
    assert all(pointing_game(f[0], box) for f in layers[1:])
    fused = fuse_layer_maps(layers, 'max', pool_stride=16)[0]
    assert pointing_game(fused, box)
    plain = np.maximum.reduce([pool_map(m, 16) for m in layers])[0]
    plain /= plain.max()
    assert np.abs(fused - plain).max() <= 2 * TIE_BREAK
    # mean and gmean keep their own unpooled rule as the tie-break
    for rule in ('mean', 'gmean'):
        pooled = fuse_layer_maps([pool_map(m, 16) for m in layers], rule)[0]
        assert np.abs(fuse_layer_maps(layers, rule, pool_stride=16)[0] - pooled).max() \
            <= 2 * TIE_BREAK


def test_mean_is_grad_cams_own_aggregation():
    from pytorch_grad_cam.base_cam import BaseCAM
    rng = np.random.default_rng(0)
    per_layer = [rng.random((2, 1, 6, 5)).astype(np.float32) for _ in range(3)]
    want = BaseCAM.aggregate_multi_layers(None, per_layer)
    np.testing.assert_allclose(LayerFusion('mean')(per_layer), want, atol=1e-6)


class OneCellHead(nn.Module):
    """A YOLO-like toy: two 3x3 convolutions, then a 1x1 'head'; the score is the head's output
    at one cell, so the gradient at the last conv is non-zero at that cell only, and at the first
    conv over its 3x3 neighbourhood."""

    def __init__(self, cell=(4, 3)) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stage1 = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(6, 1, 1)
        with torch.no_grad():
            self.head.weight.abs_()  # the last layer's grad x activation is >= 0
        self.cell = cell

    def forward(self, x):
        out = self.head(self.stage2(self.stage1(x)))
        return out[:, 0, self.cell[0], self.cell[1]]


def _maps(model, layers, x, fusion='mean'):
    cam = ODAM(layers, fusion=fusion)
    modules = [getattr(model, n) for n in layers]
    built = cam._build(model, modules)
    try:
        return built(input_tensor=x, targets=[lambda o: o])
    finally:
        built.activations_and_grads.release()


def test_fused_map_spreads_where_the_last_layer_is_one_cell():
    model = OneCellHead().eval()
    x = torch.rand(1, 3, 9, 9, generator=torch.Generator().manual_seed(1)) + 0.5
    last = _maps(model, ['stage2'], x)[0]
    assert np.count_nonzero(last > 1e-6) == 1 and last[4, 3] == pytest.approx(1.0)
    for fusion in ('mean', 'max'):
        fused = _maps(model, ['stage1', 'stage2'], x, fusion)[0]
        support = fused > 1e-6
        assert support.sum() > 1 and fused[4, 3] == pytest.approx(fused.max())
        rows, cols = np.nonzero(support)  # the receptive field of the 3x3 conv, nothing beyond
        assert rows.min() >= 3 and rows.max() <= 5 and cols.min() >= 2 and cols.max() <= 4
    max_fused = _maps(model, ['stage1', 'stage2'], x, 'max')[0]
    # max: at least as much of the map above half its maximum as either layer alone
    first = _maps(model, ['stage1'], x)[0]
    assert (max_fused >= 0.5).sum() >= max((first >= 0.5).sum(), (last >= 0.5).sum())
    assert hook_count(model) == 0


@pytest.fixture(scope='module')
def shapes_yolo():
    from mmattnvis.apis import init_model
    return init_model(CONFIG, WEIGHTS, device='cpu')


@pytest.fixture(scope='module')
def detected(shapes_yolo):
    from mmattnvis.apis import build_test_pipeline, prepare_batch
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.methods.cam import detect
    img, _ = make_shapes_image(np.random.default_rng(11))
    data = prepare_batch([img], build_test_pipeline(shapes_yolo.cfg), ['s.png'])
    return detect(shapes_yolo, data, 0.3, 3)


class PassCounter:
    """Counts forwards of the model (a hook on its backbone) and gradient computations
    (``torch.autograd.grad`` calls)."""

    def __init__(self, model, monkeypatch) -> None:
        self.forwards = self.backwards = 0
        grad = torch.autograd.grad

        def counted(*args, **kwargs):
            self.backwards += 1
            return grad(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, 'grad', counted)
        self.handle = model.backbone.register_forward_hook(self._forward)

    def _forward(self, *_):
        self.forwards += 1


@pytest.mark.parametrize('method', ['odam', 'gradcam'])
def test_one_forward_one_backward_for_all_layers(method, shapes_yolo, detected, monkeypatch):
    n = len(detected.detections[0])
    assert n >= 2
    cls = (lambda layers, **kw: ODAM(layers, **kw)) if method == 'odam' else \
        (lambda layers, **kw: DetectionCAM(method, layers, **kw))
    counts = []
    for layers in (['neck'], ['backbone.stage2', 'backbone.stage3', 'backbone.stage4', 'neck']):
        counter = PassCounter(shapes_yolo, monkeypatch)
        try:
            res = cls(layers, keep_layer_maps=True).explain(shapes_yolo, detected=detected)
        finally:
            counter.handle.remove()
            monkeypatch.undo()
        counts.append((counter.forwards, counter.backwards))
        assert [sorted(d) for d in res.layer_maps[0]] == [sorted(layers)] * n
    # One forward; one gradient per detection and one for the image-level map (plus the check
    # that the layers are on the score's path), whatever the number of layers.
    assert counts == [(1, n + 2), (1, n + 2)]
    assert all(p.grad is None and p.requires_grad for p in shapes_yolo.parameters())


def test_single_layer_unchanged_and_layer_maps_fuse_to_the_map(shapes_yolo, detected):
    plain = ODAM(['neck']).explain(shapes_yolo, detected=detected)
    for fusion in ('max', 'gmean'):
        other = ODAM(['neck'], fusion=fusion, pool_stride=16).explain(shapes_yolo,
                                                                      detected=detected)
        for a, b in zip(plain.maps[0], other.maps[0]):
            np.testing.assert_allclose(a.data, b.data, atol=1e-5)
            assert 'fusion' not in b.meta
    layers = ['backbone.stage3', 'neck']
    res = ODAM(layers, fusion='max', keep_layer_maps=True).explain(shapes_yolo, detected=detected)
    for m, per_layer in zip(res.maps[0], res.layer_maps[0]):
        assert m.meta['fusion'] == 'max'
        want = np.maximum(per_layer['backbone.stage3'], per_layer['neck'])
        assert np.corrcoef(want.ravel(), m.data.ravel())[0, 1] > 0.999
    for a, per_layer in zip(plain.maps[0], res.layer_maps[0]):
        # the same neck map up to the final renormalisation (grad-cam resizes after scaling)
        neck = per_layer['neck']
        np.testing.assert_allclose(neck / neck.max(), a.data / a.data.max(), atol=1e-5)
