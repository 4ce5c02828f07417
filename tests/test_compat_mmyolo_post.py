"""MMYOLO's YOLOv5 post-processing of only the kept priors (mmattnvis.compat.mmyolo_yolov5_post,
used on D-RISE's inference copy): the same predictions as ``YOLOv5Head.predict_by_feat`` on the
shipped shapes YOLOv5-n, the real COCO YOLOv5-n (masked photos, letterboxed) and a YOLOv7-tiny
head, for every branch of the post-processing; given only to the heads that use that method."""
import os.path as osp

import numpy as np
import pytest
import torch

from mmattnvis.compat.mmyolo_yolov5_post import keep_only_kept_priors, predict_by_feat_kept

from conftest import SHARED_IMAGES, YOLOV5N_WEIGHTS

SHAPES = ('mmattnvis::shapes/yolov5_n_shapes.py', 'mmattnvis::shapes/yolov5_n_shapes.pth')


def _head_outputs(model, images):
    """The head's raw outputs for ``images`` (BGR arrays), each also half masked (a coarse
    grid), and the batch's metainfo (letterbox ``pad_param`` included)."""
    from mmattnvis.apis import build_test_pipeline, prepare_batch
    data = prepare_batch(images, build_test_pipeline(model.cfg),
                         [f'{i}.jpg' for i in range(len(images))])
    data = model.data_preprocessor(data, False)
    inputs = data['inputs']
    grid = torch.rand(len(images), 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5
    masked = inputs * torch.nn.functional.interpolate(grid.float(), inputs.shape[-2:])
    with torch.no_grad():
        outs = model.bbox_head(model.extract_feat(torch.cat([inputs, masked])))
    metas = [s.metainfo for s in data['data_samples']] * 2
    return outs, metas


def _same(model, outs, metas, **cfg_changes):
    """Both post-processings on the same outputs; asserts the same predictions, returns how
    many boxes each image has."""
    from mmyolo.models.dense_heads.yolov5_head import YOLOv5Head
    head = model.bbox_head
    cfg = head.test_cfg.copy()
    cfg.update(cfg_changes)
    rescale = cfg.pop('rescale', True)
    theirs = YOLOv5Head.predict_by_feat(head, *outs, batch_img_metas=metas, cfg=cfg,
                                        rescale=rescale)
    ours = predict_by_feat_kept(head, *outs, batch_img_metas=metas, cfg=cfg, rescale=rescale)
    counts = []
    for a, b in zip(ours, theirs):
        assert set(a.keys()) == set(b.keys())
        assert len(a) == len(b)
        assert torch.equal(a.labels, b.labels)
        torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=1e-6)
        torch.testing.assert_close(a.bboxes, b.bboxes, rtol=0, atol=1e-4)
        counts.append(len(a))
    assert head.test_cfg.score_thr == model.cfg.model.test_cfg.score_thr  # cfg not written
    return counts


@pytest.fixture(scope='module')
def shapes():
    from mmattnvis.apis import init_model
    from mmattnvis.datasets.shapes import make_shapes_image
    model = init_model(*SHAPES, device='cpu')
    images = [make_shapes_image(np.random.default_rng(s))[0] for s in (3, 4)]
    images[1] = np.ascontiguousarray(images[1][:, :180])  # not square: letterbox padding
    return model, *_head_outputs(model, images)


@pytest.mark.parametrize('changes', [
    {}, {'multi_label': False}, {'score_thr': 0.05}, {'score_thr': 0.3, 'multi_label': False},
    {'rescale': False}, {'nms_pre': 50, 'max_per_img': 7}, {'score_thr': 0.0}])
def test_same_predictions_as_mmyolo(shapes, changes):
    model, outs, metas = shapes
    assert 'pad_param' in metas[1]
    counts = _same(model, outs, metas, **changes)
    assert max(counts) > 0  # boxes were compared
    if 'max_per_img' in changes:
        assert max(counts) <= 7


def test_same_when_no_prior_is_kept_and_on_channels_last_maps(shapes):
    model, outs, metas = shapes
    assert _same(model, outs, metas, score_thr=0.9999) == [0] * len(metas)
    cl = tuple([o.contiguous(memory_format=torch.channels_last) for o in level]
               for level in outs)
    assert max(_same(model, cl, metas)) > 0


def test_given_to_yolov5_heads_only(shapes, retinanet_small):
    import copy
    model = copy.deepcopy(shapes[0])
    assert keep_only_kept_priors(model) == 1
    assert model.bbox_head.predict_by_feat.__func__ is predict_by_feat_kept
    assert 'predict_by_feat' not in vars(shapes[0].bbox_head)  # the model itself untouched
    assert keep_only_kept_priors(model) == 0  # once
    assert keep_only_kept_priors(copy.deepcopy(retinanet_small)) == 0


def test_inference_copy_uses_it(shapes):
    from mmattnvis.methods.drise_fast import inference_copy
    dup = inference_copy(shapes[0], channels_last=True)
    assert dup.bbox_head.predict_by_feat.__func__ is predict_by_feat_kept


@pytest.mark.skipif(not osp.isfile(YOLOV5N_WEIGHTS),
                    reason='../shared/fixtures is absent (real photos and YOLOv5-n weights)')
def test_same_predictions_on_the_coco_yolov5_n(yolov5_real):
    """80 classes, multi-label NMS, score threshold 0.001, two real photos and their masked
    copies: hundreds of boxes per image, all the same."""
    import cv2
    images = [cv2.imread(osp.join(SHARED_IMAGES, f'{n}.jpg')) for n in ('dog', 'person')]
    outs, metas = _head_outputs(yolov5_real, images)
    counts = _same(yolov5_real, outs, metas)
    assert min(counts) > 50
    assert max(_same(yolov5_real, outs, metas, score_thr=0.25)) > 0


def test_same_predictions_on_a_yolov7_head():
    """YOLOv7's head inherits YOLOv5Head.predict_by_feat (objectness, anchors): it gets the
    patch and predicts the same (a model built from MMYOLO's config, random weights)."""
    import copy

    from mmattnvis.apis import init_model
    from mmattnvis.datasets.shapes import make_shapes_image
    model = init_model('mmyolo::yolov7/yolov7_tiny_syncbn_fast_8x16b-300e_coco.py', None,
                       device='cpu')
    outs, metas = _head_outputs(model, [make_shapes_image(np.random.default_rng(5))[0]])
    for thr in (0.001, 0.02):
        assert min(_same(model, outs, metas, score_thr=thr)) > 0
    assert keep_only_kept_priors(copy.deepcopy(model)) == 1
