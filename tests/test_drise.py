"""D-RISE (mmattnvis.methods.drise): masks, the saliency core on constructed detectors, the
shipped shapes YOLOv5-n, bad input, the tools, and vision-explanation-methods' D-RISE."""
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmattnvis.methods.drise import (
    DRISE,
    FixedMasks,
    Predictions,
    RandomMasks,
    content_region,
    drise_saliency,
    normalise,
    similarity,
)
from mmattnvis.render.geometry import ImageGeometry
from mmattnvis.utils.errors import UserInputError

from conftest import ROOT, hook_count

CONFIG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
WEIGHTS = osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth')
BOX = torch.tensor([[40., 20., 50., 30.]])


def region_detector(rows=slice(20, 30), cols=slice(40, 50), label=2):
    """One fixed box whose score is the mean brightness of one region of channel 0."""

    def predict(batch):
        s = batch[:, 0, rows, cols].mean(dim=(1, 2))
        return [Predictions(BOX.clone(), s[i:i + 1], torch.tensor([label]))
                for i in range(batch.shape[0])]

    return predict


def _target(label=2):
    return Predictions(BOX.clone(), torch.ones(1), torch.tensor([label]))


def test_masks_are_seeded_and_independent_of_batching():
    a = RandomMasks(10, 4, 0.3, (30, 41), seed=3)
    b = RandomMasks(10, 4, 0.3, (30, 41), seed=3)
    whole = a.batch(0, 10)
    assert whole.shape == (10, 30, 41)
    assert torch.equal(whole, torch.cat([b.batch(0, 3), b.batch(3, 10)]))
    assert not torch.equal(whole, RandomMasks(10, 4, 0.3, (30, 41), seed=4).batch(0, 10))
    assert float(whole.min()) >= 0 and float(whole.max()) <= 1
    # Cells are kept with probability p: the mean mask value is close to p.
    assert abs(float(RandomMasks(400, 4, 0.3, (30, 41)).batch(0, 400).mean()) - 0.3) < 0.03


@pytest.mark.parametrize('center', [False, True])
def test_maximum_on_the_region_the_score_depends_on(center):
    image = torch.ones(1, 3, 64, 64)
    masks = RandomMasks(500, 8, 0.5, (64, 64), seed=0)
    sal = drise_saliency(region_detector(), image, (0, 64, 0, 64), _target(), masks,
                         batch_size=64, center=center)[0]
    r, c = np.unravel_index(int(sal.argmax()), sal.shape)
    assert 20 <= r < 30 and 40 <= c < 50
    # Normalised, the region stands out: well above everything a cell or more away from it.
    norm = normalise(sal)
    away = np.ones_like(norm, bool)
    away[12:38, 32:58] = False
    assert norm[20:30, 40:50].mean() > 0.7 and norm[away].max() < 0.6


def test_batched_equals_unbatched():
    image = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    masks = RandomMasks(21, 6, 0.5, (48, 40), seed=7)
    one = drise_saliency(region_detector(slice(5, 20), slice(10, 30)), image, (0, 48, 0, 40),
                         _target(), masks, batch_size=1)
    many = drise_saliency(region_detector(slice(5, 20), slice(10, 30)), image, (0, 48, 0, 40),
                          _target(), masks, batch_size=8)
    assert torch.allclose(one, many, atol=1e-5)


def test_masks_touch_only_the_content_region():
    image = torch.rand(1, 3, 40, 50)
    fill = torch.tensor([-1., -2., -3.]).reshape(3, 1, 1)
    seen = []

    def predict(batch):
        seen.append(batch.clone())
        return [Predictions(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
                for _ in range(batch.shape[0])]

    masks = FixedMasks(torch.zeros(2, 20, 30))  # everything inside occluded
    sal = drise_saliency(predict, image, (5, 25, 10, 40), _target(), masks, 2, fill)
    batch = seen[0]
    assert torch.equal(batch[:, :, :5], image.expand(2, -1, -1, -1)[:, :, :5])
    assert torch.equal(batch[:, :, :, 40:], image.expand(2, -1, -1, -1)[:, :, :, 40:])
    assert torch.equal(batch[0, :, 5:25, 10:40], fill.expand(3, 20, 30))
    assert float(sal.abs().sum()) == 0.0  # no predictions: zero weights


def test_similarity_one_hot_and_vectors():
    t = Predictions(torch.tensor([[0., 0., 10., 10.]]), torch.tensor([0.9]), torch.tensor([1]))
    p = Predictions(torch.tensor([[0., 0., 10., 5.], [0., 0., 10., 10.]]),
                    torch.tensor([0.8, 0.4]), torch.tensor([1, 0]))
    # One-hot x score: IoU x [same label] x score -> only the first prediction, 0.5 x 0.8.
    assert float(similarity(t, p)[0]) == pytest.approx(0.4)
    t.class_vectors = torch.tensor([[0.1, 0.9]])
    p.class_vectors = torch.tensor([[0.1, 0.9], [0.9, 0.1]])
    p.objectness = torch.tensor([0.5, 1.0])
    cos = (0.09 + 0.09) / 0.82
    assert float(similarity(t, p)[0]) == pytest.approx(max(0.5 * 1 * 0.5, 1.0 * cos * 1.0))


def test_content_region_skips_letterbox_padding():
    geom = ImageGeometry.from_metainfo(dict(ori_shape=(100, 200), img_shape=(64, 128),
                                            scale_factor=(0.64, 0.64),
                                            pad_param=np.array([32., 32., 0., 0.]),
                                            batch_input_shape=(128, 128)))
    assert content_region(geom) == (32, 96, 0, 128)


@pytest.mark.parametrize('kwargs,message', [
    (dict(num_masks=0), '--drise-masks must be > 0'),
    (dict(num_masks=-3), '--drise-masks must be > 0'),
    (dict(prob=0.0), '--drise-prob'),
    (dict(prob=1.5), '--drise-prob'),
    (dict(batch_size=0), '--drise-batch'),
])
def test_bad_options(kwargs, message):
    with pytest.raises(UserInputError, match=message):
        DRISE(**kwargs)


def test_grid_larger_than_the_input():
    with pytest.raises(UserInputError, match='--drise-grid 50 does not fit'):
        RandomMasks(10, 50, 0.5, (40, 60))


def test_out_of_memory_suggests_a_smaller_batch():

    def predict(batch):
        raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')

    with pytest.raises(UserInputError, match='smaller --drise-batch'):
        drise_saliency(predict, torch.ones(1, 3, 16, 16), (0, 16, 0, 16), _target(),
                       RandomMasks(4, 2, 0.5, (16, 16)), batch_size=4)

    def broken(batch):
        raise RuntimeError('shape mismatch')

    with pytest.raises(RuntimeError, match='shape mismatch'):
        drise_saliency(broken, torch.ones(1, 3, 16, 16), (0, 16, 0, 16), _target(),
                       RandomMasks(4, 2, 0.5, (16, 16)), batch_size=4)


# ------------------------------------------------------------------- shipped shapes YOLOv5-n
@pytest.fixture(scope='module')
def shapes_yolo():
    from mmattnvis.apis import init_model
    return init_model(CONFIG, WEIGHTS, device='cpu')


@pytest.fixture(scope='module')
def shapes_batch(shapes_yolo):
    from mmattnvis.apis import build_test_pipeline, prepare_batch
    from mmattnvis.datasets.shapes import make_shapes_image
    img, _ = make_shapes_image(np.random.default_rng(11))
    return img, prepare_batch([img], build_test_pipeline(shapes_yolo.cfg), ['s.png'])


def test_shapes_yolo_smoke_and_batch_invariance(shapes_yolo, shapes_batch):
    from mmattnvis.methods.cam import detect
    img, data = shapes_batch
    with torch.no_grad():
        before = shapes_yolo.test_step(data)[0].pred_instances
    hooks = hook_count(shapes_yolo)
    detected = detect(shapes_yolo, data, 0.3, 2)
    assert detected.detections[0]
    a = DRISE(12, 8, 0.5, batch_size=12, seed=1, progress=False).explain(
        shapes_yolo, detected=detected)
    b = DRISE(12, 8, 0.5, batch_size=5, seed=1, progress=False).explain(
        shapes_yolo, detected=detected)
    assert len(a.maps[0]) == len(detected.detections[0])
    for ma, mb in zip(a.maps[0], b.maps[0]):
        assert ma.data.shape == img.shape[:2] and ma.meta['aligned']
        assert np.isfinite(ma.data).all() and ma.data.min() >= 0 and ma.data.max() <= 1
        np.testing.assert_allclose(ma.data, mb.data, atol=1e-3)
    assert a.image_maps[0].data.shape == img.shape[:2]
    with torch.no_grad():
        after = shapes_yolo.test_step(data)[0].pred_instances
    assert torch.equal(before.bboxes, after.bboxes) and torch.equal(before.scores, after.scores)
    assert hook_count(shapes_yolo) == hooks
    assert all(p.grad is None for p in shapes_yolo.parameters())


# ------------------------------------------------------ two-stage and DETR-family models
def _small_faster_rcnn():
    """MMDet's Faster R-CNN R50-FPN config made CPU-sized: a quarter-width ResNet-18, 32-channel
    FPN, 4 classes, 96 px test images; random weights, so every RoI is kept (score_thr 0)."""
    from mmattnvis.apis import init_model
    from mmattnvis.apis.model import load_config
    cfg = load_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    m = cfg.model
    m.backbone.update(depth=18, base_channels=16, init_cfg=None)
    m.neck.update(in_channels=[16, 32, 64, 128], out_channels=32)
    m.rpn_head.update(in_channels=32, feat_channels=32)
    m.roi_head.bbox_roi_extractor.out_channels = 32
    m.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64, num_classes=4)
    m.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    m.test_cfg.rcnn.update(score_thr=0.0, max_per_img=10)
    for t in cfg.test_dataloader.dataset.pipeline:
        if 'scale' in t:
            t['scale'] = (96, 96)
    torch.manual_seed(0)
    return init_model(cfg, None, device='cpu')


def _explain(model, img, score_thr, topk, num_masks, grid):
    from mmattnvis.apis import build_test_pipeline, prepare_batch
    from mmattnvis.methods.cam import detect
    data = prepare_batch([img], build_test_pipeline(model.cfg), ['x.png'])
    detected = detect(model, data, score_thr, topk)
    res = DRISE(num_masks, grid, 0.5, batch_size=8, seed=0, progress=False).explain(
        model, detected=detected)
    return detected.detections[0], res.maps[0]


def test_two_stage_faster_rcnn():
    """D-RISE through an MMDet two-stage model (RPN proposals, RoI head): one finite map of the
    image's size per detection, different detections get different maps, the model unchanged."""
    model = _small_faster_rcnn()
    img = (np.random.default_rng(0).random((72, 96, 3)) * 255).astype(np.uint8)
    hooks = hook_count(model)
    dets, maps = _explain(model, img, 0.0, 3, 16, 4)
    assert len(dets) == 3 and len(maps) == 3
    for m in maps:
        assert m.data.shape == (72, 96) and np.isfinite(m.data).all()
        assert m.data.min() == 0.0 and m.data.max() == pytest.approx(1.0)
    assert np.abs(maps[0].data - maps[1].data).max() > 0.1
    assert hook_count(model) == hooks
    assert all(p.grad is None for p in model.parameters())


def test_detr_family_shipped_dino():
    """D-RISE on the shipped shapes DINO (deformable attention, query selection, no gradient
    path needed): per detection a finite map of the image's size; the most confident detection's
    map peaks inside its box and is brighter inside it than on average."""
    from mmattnvis.apis import init_model
    from mmattnvis.datasets.shapes import make_shapes_image
    model = init_model(osp.join(ROOT, 'configs', 'shapes', 'dino_slim_shapes.py'),
                       osp.join(ROOT, 'models', 'shapes', 'dino_slim_shapes', 'weights.pth'),
                       device='cpu')
    img, _ = make_shapes_image(np.random.default_rng(11))
    dets, maps = _explain(model, img, 0.3, 2, 32, 8)
    assert len(dets) == 2
    for m in maps:
        assert m.data.shape == img.shape[:2] and np.isfinite(m.data).all()
    assert np.abs(maps[0].data - maps[1].data).max() > 0.1
    x0, y0, x1, y1 = dets[0].bbox.astype(int)
    r, c = np.unravel_index(int(maps[0].data.argmax()), maps[0].data.shape)
    assert x0 <= c < x1 and y0 <= r < y1
    assert maps[0].data[y0:y1, x0:x1].mean() > maps[0].data.mean() + 0.1


# ------------------------------------------------------------------------------------ tools

@pytest.fixture(scope='module')
def shapes_image(tmp_path_factory):
    import cv2

    from mmattnvis.datasets.shapes import make_shapes_image
    path = tmp_path_factory.mktemp('drise') / 'shapes.png'
    cv2.imwrite(str(path), make_shapes_image(np.random.default_rng(3))[0])
    return path


def _cam_vis(args, capfd):
    from mmattnvis.cli import cam_vis
    rc = cam_vis.main([str(a) for a in args])
    out, err = capfd.readouterr()
    return rc, out, err


def test_cam_vis_drise_and_odam(shapes_image, tmp_path, capfd):
    rc, out, err = _cam_vis([shapes_image, CONFIG, WEIGHTS, '--method', 'drise', 'odam',
                             '--drise-masks', '8', '--drise-grid', '4', '--drise-batch', '4',
                             '--topk', '1', '--device', 'cpu', '--out-dir', tmp_path / 'o'],
                            capfd)
    assert rc == 0, err
    assert (tmp_path / 'o' / 'shapes.png').is_file()
    # No detection above the threshold: the image is written with a note.
    rc, out, err = _cam_vis([shapes_image, CONFIG, WEIGHTS, '--method', 'drise',
                             '--drise-masks', '8', '--score-thr', '1.0', '--device', 'cpu',
                             '--out-dir', tmp_path / 'n'], capfd)
    assert rc == 0, err
    assert (tmp_path / 'n' / 'shapes.png').is_file()


@pytest.mark.parametrize('args,message', [
    (['--drise-masks', '0'], '--drise-masks must be > 0'),
    (['--drise-prob', '1'], '--drise-prob must be in (0, 1)'),
    (['--drise-grid', '100000'], '--drise-grid 100000 does not fit'),
    (['--drise-batch', '0'], '--drise-batch must be >= 1'),
])
def test_cam_vis_drise_bad_input(args, message, shapes_image, tmp_path, capfd):
    rc, out, err = _cam_vis([shapes_image, CONFIG, WEIGHTS, '--method', 'drise', '--device',
                             'cpu', '--out-dir', tmp_path / 'o'] + args, capfd)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------ vision-explanation-methods
def random_faster_rcnn(builder, size: int, num_classes: int = 5):
    """A torchvision Faster R-CNN built with ``weights=None, weights_backbone=None`` whose
    outputs depend on the image: at random initialisation the backbone's BatchNorm (running
    mean 0, variance 1) shrinks the features to ~1e-8 and every score is the same, so the
    running statistics are set from one batch of noise and the class logits scaled down."""
    torch.manual_seed(0)
    model = builder(weights=None, weights_backbone=None, box_score_thresh=0.0, min_size=size,
                    max_size=size, num_classes=num_classes).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.backbone.train()
    with torch.no_grad():
        model.backbone(torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(1)))
    model.backbone.eval()
    model.roi_heads.box_predictor.cls_score.weight.data.mul_(0.02)
    return model


def test_same_masks_as_vision_explanation_methods(monkeypatch):
    """Our D-RISE (centred, as theirs) and vision-explanation-methods' D-RISE on the same
    torchvision Faster R-CNN and the same masks give the same maps."""
    vem = pytest.importorskip(
        'vision_explanation_methods.explanations.drise',
        reason='vision-explanation-methods is not installed (test-only dependency)')
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn
    from vision_explanation_methods.explanations.common import (
        DetectionRecord,
        GeneralObjectDetectionModelWrapper,
    )
    model = random_faster_rcnn(fasterrcnn_mobilenet_v3_large_320_fpn, 96)
    image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(list(image))[0]
    boxes, scores, labels = base['boxes'][:1], base['scores'][:1], base['labels'][:1]

    def ours(batch):
        return [Predictions(o['boxes'], o['scores'], o['labels']) for o in model(list(batch))]

    class Wrapper(GeneralObjectDetectionModelWrapper):

        def predict(self, x):
            out = []
            for o in model(list(x)):
                onehot = torch.nn.functional.one_hot(o['labels'], 5).float()
                out.append(DetectionRecord(o['boxes'], o['scores'], onehot))
            return out

    masks = RandomMasks(16, 4, 0.5, (96, 96), seed=0)
    stack = masks.batch(0, 16)
    feed = iter(stack)
    monkeypatch.setattr(vem, 'generate_mask', lambda *a, **k: next(feed).repeat(3, 1, 1))
    target = DetectionRecord(boxes, scores, torch.nn.functional.one_hot(labels, 5).float())
    theirs = vem.DRISE_saliency(Wrapper(), image, [target], 16, mask_res=(4, 4))
    mine = drise_saliency(ours, image, (0, 96, 0, 96), Predictions(boxes, scores, labels),
                          FixedMasks(stack), batch_size=8, center=True)
    a = theirs[0][0]['detection'][0].flatten().numpy()
    b = mine[0].flatten().numpy()
    assert a.std() > 0 and np.corrcoef(a, b)[0, 1] >= 0.99


def test_eval_faithfulness_drise_odam_and_odam_protocol(tmp_path, capfd):
    import csv

    from mmattnvis.cli import eval_faithfulness
    from mmattnvis.datasets import generate_shapes_dataset
    generate_shapes_dataset(str(tmp_path / 'data'), num_images=1, seed=5)
    rc = eval_faithfulness.main([str(a) for a in [
        CONFIG, WEIGHTS, '--data', tmp_path / 'data', '--methods', 'drise', 'odam',
        '--drise-masks', '8', '--drise-grid', '4', '--steps', '2', '--topk', '2',
        '--no-insertion', '--device', 'cpu', '--out-dir', tmp_path / 'f']])
    out, err = capfd.readouterr()
    assert rc == 0, err
    with open(tmp_path / 'f' / 'faithfulness.csv') as f:
        rows = {r['method']: r for r in csv.DictReader(f)}
    assert set(rows) == {'drise', 'odam', 'random'}
    for r in rows.values():
        assert 0.0 <= float(r['pointing_game_gt_strict']) <= 1.0
        assert float(r['odam_deletion']) >= 0.0 and r['odam_insertion'] == ''
        assert 0.0 <= float(r['odi']) <= 1.0
    assert 'ODAM deletion' in (tmp_path / 'f' / 'faithfulness.md').read_text()


def test_default_batch_depends_on_the_device_and_input_size():
    """``--drise-batch`` left out: on a CPU the batch shrinks with the input (big batches cost
    more per image there, benchmarks/bench_drise_fast.py): 4 for 256 px, 2 for 640 px, 1 for a
    DETR's 800 x 1333; 16 on a GPU; a given size is kept."""
    def image(h, w):
        return torch.empty(1, 3, h, w)

    assert DRISE(progress=False).batch_for(image(256, 256)) == 4
    assert DRISE(progress=False).batch_for(image(512, 512)) == 4
    assert DRISE(progress=False).batch_for(image(640, 640)) == 2
    assert DRISE(progress=False).batch_for(image(800, 1344)) == 1
    on_gpu = SimpleNamespace(device=torch.device('cuda'), shape=(1, 3, 640, 640))
    assert DRISE(progress=False).batch_for(on_gpu) == 16
    assert DRISE(batch_size=7, progress=False).batch_for(image(640, 640)) == 7
