"""Grad-CAM family per detection (grad-cam package) on MMDet / MMYOLO detectors."""
import os.path as osp

import numpy as np
import pytest
import torch
from torch import nn

from mmattnvis.apis import build_test_pipeline, init_model, load_config, prepare_batch
from mmattnvis.capture.names import resolve_module
from mmattnvis.methods.cam import (
    DetectionCAM,
    DetectorFunction,
    MultiLevelActivationsAndGradients,
    MultiLevelReshape,
    TokenReshape,
    ablation_layer_class,
    cam_class,
    normalize_in_box,
)
from mmattnvis.utils.errors import UserInputError

from conftest import ROOT, hook_count

SHAPES_YOLO = (osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py'),
               osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth'))


@pytest.fixture(scope='module')
def shapes_yolo():
    return init_model(*SHAPES_YOLO, device='cpu')


@pytest.fixture(scope='module')
def shapes_batch(shapes_yolo):
    from mmattnvis.datasets.shapes import make_shapes_image
    img, objs = make_shapes_image(np.random.default_rng(11))
    return img, objs, prepare_batch([img], build_test_pipeline(shapes_yolo.cfg), ['s.png'])


def test_reshape_transforms_by_hand():
    a = torch.arange(8.).reshape(1, 2, 2, 2)
    b = torch.full((1, 1, 1, 1), 5.)
    out = MultiLevelReshape()((a, b))
    assert out.shape == (1, 3, 2, 2)
    assert torch.equal(out[:, :2], a) and torch.equal(out[:, 2], torch.full((1, 2, 2), 5.))
    assert MultiLevelReshape()(a) is a
    # 1 class token + a 2 x 3 grid, token 1 + r * 3 + c lands at (r, c).
    tokens = torch.zeros(1, 7, 4)
    tokens[0, 1 + 1 * 3 + 2] = 1.0
    grid = TokenReshape(grid=(2, 3))(tokens)
    assert grid.shape == (1, 4, 2, 3) and grid[0, :, 1, 2].eq(1).all() and grid.sum() == 4
    assert TokenReshape()(torch.zeros(2, 17, 4)).shape == (2, 4, 4, 4)  # square, 1 extra
    with pytest.raises(ValueError, match='do not make a 2x3 grid'):
        TokenReshape(grid=(2, 3), extra_tokens=0)(tokens)


def test_recorder_equals_grad_cam_on_a_plain_layer():
    """On a single-tensor layer our recorder gives grad-cam's own result exactly."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    x = torch.randn(2, 3, 12, 10)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(2)]
    with GradCAM(net, [net[2]]) as cam:
        ref = cam(x, targets)
    with GradCAM(net, [net[2]]) as cam:
        cam.activations_and_grads.release()
        cam.activations_and_grads = MultiLevelActivationsAndGradients(net, [net[2]], None)
        ours = cam(x, targets)
    assert ref.shape == (2, 12, 10) and np.allclose(ref, ours, atol=1e-6)


def test_fpn_ablation_layer_indexes_through_levels():
    layer = ablation_layer_class()()
    levels = (torch.ones(1, 2, 2, 2), torch.ones(1, 3, 1, 1))
    layer.set_next_batch(0, levels, 2)
    layer.indices = np.array([1, 3])  # level 0 channel 1; level 1 channel 1
    out = layer(None)
    assert isinstance(out, tuple) and out[0].shape == (2, 2, 2, 2)
    assert out[0][0, 1].eq(0).all() and out[0][0, 0].eq(1).all() and out[1][0].eq(1).all()
    assert out[1][1, 1].eq(0).all() and out[1][1, 0].eq(1).all() and out[0][1].eq(1).all()


def test_unknown_method_and_layer_are_one_line_errors(shapes_yolo, shapes_batch):
    with pytest.raises(UserInputError, match='unknown CAM method .*gradcam'):
        cam_class('gradcum')
    assert cam_class('GradCAM++').__name__ == 'GradCAMPlusPlus'
    assert cam_class('eigen_cam_unsigned').__name__ == 'EigenCAM'
    assert cam_class('EigenCAM').__name__ == 'SignCorrectedEigenCAM'
    assert cam_class('eigencam') is cam_class('EigenCAM')  # one class, not one per call
    with pytest.raises(UserInputError, match='neck'):
        DetectionCAM('gradcam', ['nek']).explain(shapes_yolo, shapes_batch[2])


def test_eigencam_sign_is_fixed():
    """An SVD component has no sign; the corrected EigenCAM puts the object on top either way.

    A bright 2x2 object (correlated over 4 channels) on a faintly noisy background, and the same
    scene negated. The corrected map is grad-cam's raw projection or its negative, oriented so
    that its peak lies on the object, for both scenes and for EigenCAM and EigenGradCAM.
    """
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
    rng = np.random.default_rng(0)
    acts = rng.normal(0, 0.05, (1, 4, 6, 6)).astype(np.float32)
    acts[0, :, 1:3, 3:5] += np.array([5., 4., 3., 2.], np.float32)[:, None, None]
    for cls in (cam_class('eigencam'), cam_class('eigengradcam')):
        for a in (acts, -acts):
            raw = get_2d_projection(a)[0]
            m = cls.get_cam_image(None, None, None, None, a, np.ones_like(a), False)[0]
            assert np.allclose(m, raw, atol=1e-4) or np.allclose(m, -raw, atol=1e-4)
            r, c = np.unravel_index(np.argmax(m), m.shape)
            assert 1 <= r < 3 and 3 <= c < 5 and m[r, c] > 0
            assert m[1:3, 3:5].min() > 0 > np.median(m)


@pytest.mark.parametrize('method', ['gradcam', 'hirescam', 'layercam', 'eigencam', 'segeigencam'])
def test_per_detection_maps_leave_the_model_untouched(method, shapes_yolo, shapes_batch):
    img, objs, data = shapes_batch
    model = shapes_yolo
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    hooks = hook_count(model)
    with torch.no_grad():
        before = model.test_step(data)[0].pred_instances
    res = DetectionCAM(method, ['neck']).explain(model, data, score_thr=0.3, topk=4)
    dets, maps = res.detections[0], res.maps[0]
    assert len(dets) >= 2 and len(maps) == len(dets)
    for d, m in zip(dets, maps):
        assert m.data.shape == img.shape[:2] and np.isfinite(m.data).all()
        assert 0.0 <= m.data.min() and m.data.max() <= 1.0 + 1e-6
    assert res.image_maps[0].data.shape == img.shape[:2]
    if method in ('hirescam', 'layercam'):
        # Element-wise gradient methods are instance-specific: every peak is in its box.
        from mmattnvis.metrics import pointing_game
        assert all(pointing_game(m.data, d.bbox) for d, m in zip(dets, maps))
    # The model is exactly as before: weights, requires_grad flags, no .grad, no hooks,
    # the same predictions.
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert hook_count(model) == hooks
    with torch.no_grad():
        after = model.test_step(data)[0].pred_instances
    assert torch.equal(before.bboxes, after.bboxes) and torch.equal(before.scores, after.scores)
    # The kept detections are the model's own predictions.
    assert np.allclose(dets[0].bbox, before.bboxes[0].numpy(), atol=1e-4)


def test_batched_detections_equal_one_at_a_time(shapes_yolo, shapes_batch):
    data = shapes_batch[2]
    one = DetectionCAM('gradcam', ['neck'], batch_size=1).explain(shapes_yolo, data, 0.0, 3)
    many = DetectionCAM('gradcam', ['neck'], batch_size=8).explain(shapes_yolo, data, 0.0, 3)
    assert len(one.maps[0]) == 3
    for a, b in zip(one.maps[0] + one.image_maps, many.maps[0] + many.image_maps):
        assert np.allclose(a.data, b.data, atol=1e-5)


@pytest.mark.parametrize('method', ['gradcam', 'gradcam++', 'hirescam', 'layercam',
                                    'eigengradcam', 'eigencam', 'xgradcam'])
def test_one_forward_equals_the_batch_of_copies(method, shapes_yolo, shapes_batch):
    """One forward + target-layer-only gradients give grad-cam's batch-of-copies maps."""
    data = shapes_batch[2]
    fast = DetectionCAM(method, ['neck']).explain(shapes_yolo, data, 0.0, 3)
    copies = DetectionCAM(method, ['neck'], one_forward=False).explain(shapes_yolo, data, 0.0, 3)
    assert len(fast.maps[0]) == 3
    for a, b in zip(fast.maps[0] + fast.image_maps, copies.maps[0] + copies.image_maps):
        assert np.abs(a.data - b.data).max() < 1e-4 * max(1.0, np.abs(b.data).max())


def test_principal_projection_equals_grad_cams():
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    from mmattnvis.methods.cam import principal_projection
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(2, 12, 9, 7)).astype(np.float32)
    acts[1, :, 2:4, 3:5] += 5  # a strong component
    ours = principal_projection(acts)
    ref = get_2d_projection_with_sign_correction(acts)
    assert ours.shape == (2, 9, 7) and np.allclose(ours, ref, atol=1e-4)


def test_layer_off_the_score_path_is_one_line(shapes_yolo, shapes_batch):
    """A layer the detection's score does not depend on: say so, not 'NoneType has no shape'."""
    from conftest import RETINANET_CONFIG
    data = shapes_batch[2]
    retina = init_model(RETINANET_CONFIG, None, cfg_options={
        'model.test_cfg.score_thr': 0.0, 'test_dataloader.dataset.pipeline.1.scale': (160, 160)})
    retina_data = prepare_batch([shapes_batch[0]], build_test_pipeline(retina.cfg), ['s.png'])
    from mmattnvis.methods.cam import detect
    assert len(detect(retina, retina_data, 0.0, 1).detections[0]) == 1
    with pytest.raises(UserInputError,
                       match="target layer bbox_head.retina_reg is not used for the detections'"):
        # RetinaNet's box-regression conv: class scores do not depend on it (the IoU factor of
        # the target carries no gradient)
        DetectionCAM('gradcam', ['bbox_head.retina_reg']).explain(retina, retina_data, 0.0, 1)
    with pytest.raises(UserInputError, match='target layer bbox_head.loss_cls did not run'):
        DetectionCAM('gradcam', ['bbox_head.loss_cls']).explain(shapes_yolo, data, 0.0, 1)


def test_iou_target_and_norm_in_bbox(shapes_yolo, shapes_batch):
    data = shapes_batch[2]
    res = DetectionCAM('gradcam', ['neck'], use_iou=False, norm_in_bbox=True).explain(
        shapes_yolo, data, 0.3, 2)
    for d, m in zip(res.detections[0], res.maps[0]):
        x1, y1, x2, y2 = d.bbox
        ys, xs = np.nonzero(m.data)
        assert m.data.max() == pytest.approx(1.0)
        assert xs.min() >= np.floor(x1) and xs.max() < np.ceil(x2)
        assert ys.min() >= np.floor(y1) and ys.max() < np.ceil(y2)
    assert not normalize_in_box(np.ones((5, 5)), (1, 1, 3, 3)).any()  # flat inside: zeros


def test_cleanup_when_a_target_raises(shapes_yolo, shapes_batch, monkeypatch):
    from mmattnvis.methods import cam as cam_mod
    model, data = shapes_yolo, shapes_batch[2]
    neck, hooks = model.neck, hook_count(model)
    calls = {'n': 0}
    original = cam_mod.DetectionTarget.__call__

    def flaky(self, out):
        calls['n'] += 1
        if calls['n'] > 3:  # after the unperturbed scores: inside AblationCAM's ablation loop
            raise RuntimeError('target failed')
        return original(self, out)

    monkeypatch.setattr(cam_mod.DetectionTarget, '__call__', flaky)
    for method in ('gradcam', 'ablationcam'):
        calls['n'] = 0 if method == 'ablationcam' else 10
        with pytest.raises(RuntimeError, match='target failed'):
            DetectionCAM(method, ['neck'], ablation_batch_size=64).explain(model, data, 0.3, 1)
        assert model.neck is neck and hook_count(model) == hooks
        assert all(p.requires_grad for p in model.parameters())
        assert all(p.grad is None for p in model.parameters())


def test_ablation_cam_on_an_fpn_tuple(shapes_yolo, shapes_batch):
    model, data = shapes_yolo, shapes_batch[2]
    neck = model.neck
    res = DetectionCAM('ablationcam', ['neck'], ablation_batch_size=64).explain(
        model, data, 0.3, 1)
    m = res.maps[0][0].data
    assert model.neck is neck and np.isfinite(m).all() and m.max() > m.min()


def _zero_score_thr(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == 'score_thr':
                node[k] = 1e-6  # keep every prediction of a random-weight model,
            elif k == 'min_bbox_size':
                node[k] = -1  # also its (near-)empty boxes
            else:
                _zero_score_thr(v)
    elif isinstance(node, list):
        for v in node:
            _zero_score_thr(v)


CONFIGS = {
    'retinanet': ('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', 'neck'),
    'fcos': ('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 'neck'),
    'faster_rcnn': ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'neck'),
    'rtmdet': ('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', 'neck'),
    'detr': ('mmdet::detr/detr_r50_8xb2-150e_coco.py', 'backbone.layer4'),
    'yolov5': ('mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py', 'neck'),
    'yolov8': ('mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py', 'neck'),
    'mmyolo_rtmdet': ('mmyolo::rtmdet/rtmdet_tiny_syncbn_fast_8xb32-300e_coco.py', 'neck'),
}


@pytest.mark.parametrize('name', list(CONFIGS))
def test_models_built_from_configs(name):
    """Random weights, a small image: a finite, non-flat per-detection map for each family."""
    config, layer = CONFIGS[name]
    cfg = load_config(config)
    _zero_score_thr(cfg.model)
    for t in cfg.test_dataloader.dataset.pipeline:
        if 'scale' in t:
            t['scale'] = (160, 160)
    torch.manual_seed(0)
    model = init_model(cfg, None, device='cpu')
    img = (np.random.default_rng(0).random((120, 150, 3)) * 255).astype(np.uint8)
    data = prepare_batch([img], build_test_pipeline(model.cfg), ['r.png'])
    res = DetectionCAM('gradcam', [layer]).explain(model, data, score_thr=-1.0, topk=1)
    assert len(res.detections[0]) == 1
    m = res.maps[0][0].data
    assert m.shape == (120, 150) and np.isfinite(m).all()
    assert all(p.grad is None for p in model.parameters())
    # The detection's score reaches the target layer with a non-zero gradient (a random model's
    # Grad-CAM may still be flat after the ReLU, and its boxes may be empty, so check the
    # gradient of the top score itself).
    proc = model.data_preprocessor(data, False)
    fn = DetectorFunction(model, proc['data_samples'][0])
    rec = MultiLevelActivationsAndGradients(fn, [resolve_module(model, layer)], None)
    try:
        rec(proc['inputs'])[0].scores.max().backward()
        assert rec.gradients and float(rec.gradients[0].abs().sum()) > 0
    finally:
        rec.release()
        model.zero_grad(set_to_none=True)


def test_token_cam_on_a_non_square_vit_grid():
    """A ViT-style model whose logit reads one patch token: the CAM of the token output, through
    TokenReshape, peaks on that patch of a 3 x 5 grid (class token dropped)."""
    from pytorch_grad_cam import HiResCAM
    from pytorch_grad_cam.utils.model_targets import RawScoresOutputTarget

    class TinyViT(nn.Module):

        def __init__(self):
            super().__init__()
            self.patch = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.ReLU())
            self.cls = nn.Parameter(torch.zeros(1, 1, 8))
            self.tokens = nn.Identity()
            self.head = nn.Linear(8, 1)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = self.tokens(torch.cat([self.cls.expand(len(t), -1, -1), t], 1))
            return self.head(t[:, 1 + 1 * 5 + 3])  # row 1, column 3 of the 3 x 5 grid

    torch.manual_seed(0)
    net = TinyViT()
    with torch.no_grad():
        net.head.weight.abs_()  # non-negative tokens and weights: a positive map at the patch
    x = torch.rand(1, 3, 12, 20)
    with HiResCAM(net, [net.tokens], reshape_transform=TokenReshape(grid=(3, 5))) as cam:
        cam.activations_and_grads.release()
        cam.activations_and_grads = MultiLevelActivationsAndGradients(
            net, [net.tokens], TokenReshape(grid=(3, 5)))
        out = cam(x, [RawScoresOutputTarget()])[0]
    r, c = np.unravel_index(out.argmax(), out.shape)
    assert out.shape == (12, 20) and 4 <= r < 8 and 12 <= c < 16
