"""The capture -> reduce -> render API on plain torchvision detectors (no download)."""
import numpy as np
import pytest
import torch

from mmattnvis.capture import FeatureCapture
from mmattnvis.methods import SqueezeMean, TopKChannels
from mmattnvis.render import ImageGeometry
from mmattnvis.visualization import render_featmap

tv_models = pytest.importorskip('torchvision.models.detection')


def _images():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 120, 200, generator=g), torch.rand(3, 150, 100, generator=g)]


def _geoms(model, images):
    with torch.no_grad():
        image_list, _ = model.transform(images)
    in_shape = image_list.tensors.shape[-2:]
    return [ImageGeometry.from_resize_pad(img.shape[-2:], size, in_shape)
            for img, size in zip(images, image_list.image_sizes)]


def _rgb(img):
    return (img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def test_faster_rcnn_layer4_every_image():
    model = tv_models.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=160,
                                              max_size=256).eval()
    images = _images()
    with torch.no_grad():
        ref = model(images)
    with FeatureCapture(model, ['backbone.body.layer4', 'backbone.fpn']) as cap:
        with torch.no_grad():
            out = model(images)
    for a, b in zip(ref, out):
        assert torch.equal(a['boxes'], b['boxes'])
    fm = cap.featmaps()
    assert fm['backbone.body.layer4'].shape[:2] == (2, 2048)
    assert {'backbone.fpn.0', 'backbone.fpn.pool'} <= set(fm)  # OrderedDict output
    geoms = _geoms(model, images)
    for i, img in enumerate(images):
        panel = render_featmap(fm['backbone.body.layer4'][i], _rgb(img), SqueezeMean(), geoms[i])
        assert panel.shape == (img.shape[1], img.shape[2], 3)


def test_retinanet_classification_head_outputs():
    model = tv_models.retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=160,
                                             max_size=256).eval()
    images = _images()[:1]
    # cls_logits is shared over the FPN levels: one recording per level
    with FeatureCapture(model, ['head.classification_head.cls_logits']) as cap:
        with torch.no_grad():
            model(images)
    fm = cap.featmaps()
    assert len(fm) == 5 and all(k.startswith('head.classification_head.cls_logits#') for k in fm)
    sizes = [v.shape[-1] for v in fm.values()]
    assert sizes == sorted(sizes, reverse=True)  # P3 ... P7
    geom = _geoms(model, images)[0]
    panel = render_featmap(fm['head.classification_head.cls_logits#0'][0], _rgb(images[0]),
                           TopKChannels(4), geom, arrangement=(2, 2))
    assert panel.shape == (240, 400, 3)


def test_ssd300_multilevel_head_inputs():
    model = tv_models.ssd300_vgg16(weights=None, weights_backbone=None).eval()
    images = _images()[:1]
    with FeatureCapture(model, ['head'], what='input') as cap:
        with torch.no_grad():
            model(images)
    fm = cap.featmaps()
    assert list(fm) == [f'head.{i}' for i in range(6)]
    assert [v.shape[-1] for v in fm.values()] == [38, 19, 10, 5, 3, 1]
    # SSD stretches the image to 300x300: the content box is the whole input
    geom = ImageGeometry.from_resize_pad((120, 200), (300, 300), (300, 300))
    panel = render_featmap(fm['head.0'][0], _rgb(images[0]), SqueezeMean(), geom)
    assert panel.shape == (120, 200, 3)
