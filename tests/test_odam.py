"""ODAM (mmattnvis.methods.odam): a hand computation on a small two-level model, and per
detection maps on the shipped shapes YOLOv5-n."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmattnvis.methods.odam import ODAM
from mmattnvis.utils.errors import UserInputError

from conftest import ROOT, hook_count

CONFIG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
WEIGHTS = osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth')


class Levels(nn.Module):
    """An 'FPN' of two levels: 8x8 and 4x4."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 3, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 3, stride=2, padding=1)

    def forward(self, x):
        return self.a(x), self.b(x)


class TwoLevelScorer(nn.Module):
    """``(B, 3, 8, 8)`` -> ``(B,)`` a non-linear score of both levels."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.levels = Levels()
        self.w1 = nn.Parameter(torch.randn(3, 8, 8))
        self.w2 = nn.Parameter(torch.randn(2, 4, 4))

    def score(self, a1, a2):
        return (self.w1 * torch.tanh(a1)).sum(dim=(1, 2, 3)) + (self.w2 * a2 ** 2).sum(
            dim=(1, 2, 3))

    def forward(self, x):
        return self.score(*self.levels(self.stem(x)))


def test_odam_equals_a_hand_computation():
    from pytorch_grad_cam.utils.image import scale_cam_image
    model = TwoLevelScorer().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    odam = ODAM(['levels'])
    cam = odam._build(model, [model.levels])
    try:
        got = cam(input_tensor=x, targets=[lambda o: o, lambda o: o])
    finally:
        cam.activations_and_grads.release()
    assert hook_count(model) == 0
    # By hand: per level sum_k dS/dA_k * A_k, the 4x4 level repeated 2x2, summed, ReLU, scaled.
    a1, a2 = (t.detach().requires_grad_(True) for t in model.levels(model.stem(x)))
    g1, g2 = torch.autograd.grad(model.score(a1, a2).sum(), (a1, a2))
    m = (g1 * a1).sum(1) + (g2 * a2).sum(1).repeat_interleave(2, 1).repeat_interleave(2, 2)
    want = scale_cam_image(F.relu(m).detach().numpy(), (8, 8))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.ptp(want[0]) > 0 and not np.allclose(want[0], want[1])


def test_unknown_attribute():
    with pytest.raises(UserInputError, match="unknown ODAM attribute 'w'"):
        ODAM(['neck'], attribute='w')


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
    return img, data, detect(shapes_yolo, data, 0.3, 3)


def test_odam_per_detection_on_shapes_yolo(shapes_yolo, detected):
    from mmattnvis.metrics import energy_pointing_game, pointing_game
    img, data, det = detected
    dets = det.detections[0]
    assert len(dets) >= 2
    with torch.no_grad():
        before = shapes_yolo.test_step(data)[0].pred_instances
    hooks = hook_count(shapes_yolo)
    res = ODAM(['neck']).explain(shapes_yolo, detected=det)
    for i, (d, m) in enumerate(zip(dets, res.maps[0])):
        assert m.data.shape == img.shape[:2] and m.label == 'odam'
        assert pointing_game(m.data, d.bbox)
        # Instance-specific: more of the map on its own box than on any other detection's.
        own = energy_pointing_game(m.data, d.bbox)
        for j, other in enumerate(dets):
            if j != i:
                assert own > energy_pointing_game(m.data, other.bbox)
    coords = ODAM(['neck'], attribute='x2').explain(shapes_yolo, detected=det)
    assert coords.maps[0][0].label == 'odam-x2' and np.ptp(coords.maps[0][0].data) > 0
    assert hook_count(shapes_yolo) == hooks
    assert all(p.grad is None and p.requires_grad for p in shapes_yolo.parameters())
    with torch.no_grad():
        after = shapes_yolo.test_step(data)[0].pred_instances
    assert torch.equal(before.bboxes, after.bboxes) and torch.equal(before.scores, after.scores)
