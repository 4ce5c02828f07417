"""Maps land on the original-image pixels they came from, through letterbox and padding.

The captured "layer" is the data preprocessor's output, i.e. the network input itself, average
pooled to a stride-8 grid: a known function of position. A bright square in a non-square image
must light up the same place in the aligned map.
"""
import numpy as np
import torch.nn.functional as F

from mmattnvis.apis import build_test_pipeline, geometries, prepare_batch, run_test_step
from mmattnvis.capture import FeatureCapture
from mmattnvis.render import ImageGeometry, align_to_image

from conftest import square_image


def _input_maps(model, images, stride=8):
    pipeline = build_test_pipeline(model.cfg)
    data = prepare_batch(images, pipeline)
    with FeatureCapture(model, ['data_preprocessor']) as cap:
        samples = run_test_step(model, data)
    inputs = cap.featmaps()['data_preprocessor.inputs']  # (N, 3, H_in, W_in)
    pooled = F.avg_pool2d(inputs.float().mean(1, keepdim=True), stride)
    return pooled[:, 0].numpy(), geometries(samples), samples


def _iou(mask_a, mask_b):
    return (mask_a & mask_b).sum() / max(1, (mask_a | mask_b).sum())


def _square_mask(h, w, box):
    m = np.zeros((h, w), bool)
    m[box[1]:box[3], box[0]:box[2]] = True
    return m


def _check(fmap, geom, h, w, box, min_iou=0.8):
    aligned = align_to_image(fmap, geom)
    assert aligned.shape == (h, w)
    thr = (aligned.max() + aligned.min()) / 2
    iou = _iou(aligned > thr, _square_mask(h, w, box))
    stretched = align_to_image(fmap, None, out_shape=(h, w))
    iou_stretched = _iou(stretched > thr, _square_mask(h, w, box))
    return iou, iou_stretched


def test_letterbox_yolov5(yolov5_random):
    h, w, box = 240, 400, (250, 10, 330, 70)
    fmaps, geoms, samples = _input_maps(yolov5_random, [square_image(h, w, box)])
    pad = samples[0].metainfo['pad_param']
    assert pad[0] > 50  # a tall letterbox band: (640 - 384) / 2 rows top and bottom
    iou, iou_stretched = _check(fmaps[0], geoms[0], h, w, box)
    assert iou > 0.85, iou
    assert iou_stretched < 0.5, iou_stretched  # MMYOLO-style stretching misses the square
    y, x = np.unravel_index(np.argmax(align_to_image(fmaps[0], geoms[0])), (h, w))
    assert box[0] <= x < box[2] and box[1] <= y < box[3]


def test_resize_and_batch_padding_mmdet(retinanet_small):
    # Two aspect ratios in one batch: the wide image is padded at the bottom, the tall one on
    # the right, by the data preprocessor's batch padding.
    wide, tall = (150, 300, (200, 90, 260, 140)), (300, 120, (20, 200, 90, 270))
    images = [square_image(*wide), square_image(*tall)]
    fmaps, geoms, samples = _input_maps(retinanet_small, images)
    assert samples[0].metainfo['batch_input_shape'] == samples[1].metainfo['batch_input_shape']
    for fmap, geom, (h, w, box) in zip(fmaps, geoms, (wide, tall)):
        iou, iou_stretched = _check(fmap, geom, h, w, box)
        assert iou > 0.85, iou
        assert iou_stretched < iou - 0.2


def test_geometry_from_metainfo_variants():
    letter = ImageGeometry.from_metainfo({
        'ori_shape': (240, 400), 'img_shape': (640, 640), 'scale_factor': (1.6, 1.6),
        'pad_param': np.array([128., 128., 0., 0.]), 'batch_input_shape': (640, 640)})
    assert letter.content_box == (0.0, 128.0, 640.0, 512.0)
    resize = ImageGeometry.from_metainfo({
        'ori_shape': (150, 300), 'img_shape': (128, 256), 'scale_factor': (256 / 300, 128 / 150),
        'batch_input_shape': (256, 256)})
    assert np.allclose(resize.content_box, (0, 0, 256, 128))
    # a feature pixel maps to the original pixel it covers
    m = np.zeros((32, 32), np.float32)  # stride 8 over the 256x256 input
    m[4, 10] = 1.0  # input x in [80, 88), y in [32, 40) -> original x/0.853, y/0.853
    aligned = align_to_image(m, resize)
    y, x = np.unravel_index(np.argmax(aligned), aligned.shape)
    assert abs(x - 84 * 300 / 256) <= 2 and abs(y - 36 * 150 / 128) <= 2
    assert aligned.shape == (150, 300)
    # and can be sampled at another output size
    small = align_to_image(m, resize, out_shape=(75, 150))
    ys, xs = np.unravel_index(np.argmax(small), small.shape)
    assert abs(xs - x / 2) <= 1.5 and abs(ys - y / 2) <= 1.5
