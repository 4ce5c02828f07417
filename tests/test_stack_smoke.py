"""The pinned OpenMMLab stack really works: configs build, inference runs, compiled ops run."""
import os.path as osp

import numpy as np
import torch

from conftest import DETR_CONFIG, needs_shared


def _infer(model, images):
    from mmattnvis.apis import build_test_pipeline, prepare_batch, run_test_step
    pipeline = build_test_pipeline(model.cfg)
    return run_test_step(model, prepare_batch(images, pipeline))


def _check_pred(sample, h, w, max_dets=None):
    pred = sample.pred_instances
    n = len(pred)
    assert pred.bboxes.shape == (n, 4) and pred.scores.shape == (n, ) and pred.labels.shape == (n, )
    assert torch.isfinite(pred.bboxes).all() and torch.isfinite(pred.scores).all()
    if max_dets is not None:
        assert n <= max_dets
    assert sample.ori_shape == (h, w)
    if n:
        # predictions are in original-image pixels (rescaled back through the pipeline)
        assert pred.bboxes[:, 0::2].min() >= -1 and pred.bboxes[:, 0::2].max() <= w + 1
        assert pred.bboxes[:, 1::2].min() >= -1 and pred.bboxes[:, 1::2].max() <= h + 1


def test_detr_builds_and_infers_on_cpu():
    from mmattnvis.apis import init_model
    model = init_model(DETR_CONFIG, None, cfg_options={
        'test_dataloader.dataset.pipeline.1.scale': (256, 256)})
    assert type(model).__name__ == 'DETR'
    img = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    (sample, ) = _infer(model, [img])
    _check_pred(sample, 120, 200, max_dets=100)
    assert len(sample.pred_instances) == 100  # DETR keeps num_queries predictions


def test_yolov5_builds_and_infers_on_cpu(yolov5_random):
    img = np.random.default_rng(1).integers(0, 255, (150, 220, 3), dtype=np.uint8)
    samples = _infer(yolov5_random, [img, img[:100]])
    assert len(samples) == 2
    _check_pred(samples[0], 150, 220)
    _check_pred(samples[1], 100, 220)
    assert 'pad_param' in samples[0].metainfo  # LetterResize ran


def test_mmcv_compiled_nms_matches_torchvision():
    import mmcv.ops
    import torchvision
    from mmcv.utils import ext_loader
    ext = ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])
    assert hasattr(ext, 'nms')
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    wh = torch.rand(200, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(200, generator=g)
    dets, keep = mmcv.ops.nms(boxes, scores, iou_threshold=0.5)
    ref = torchvision.ops.nms(boxes, scores, 0.5)
    assert keep.tolist() == ref.tolist()
    assert torch.allclose(dets[:, 4], scores[ref])
    out = mmcv.ops.roi_align(torch.rand(1, 2, 16, 16), torch.tensor([[0., 1., 1., 9., 9.]]),
                             (4, 4), 1.0, 2)
    assert out.shape == (1, 2, 4, 4)


def test_multiscale_deformable_attention_on_cpu():
    from mmcv.ops import MultiScaleDeformableAttention
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    torch.manual_seed(0)
    embed, heads, levels, points = 32, 4, 2, 3
    attn = MultiScaleDeformableAttention(embed, heads, levels, points, batch_first=True).eval()
    shapes = torch.tensor([[8, 10], [4, 5]])
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    num_value = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.rand(2, num_value, embed)
    query = torch.rand(2, 7, embed)
    ref = torch.rand(2, 7, levels, 2)
    out = attn(query, value=value, reference_points=ref, spatial_shapes=shapes,
               level_start_index=starts)
    assert out.shape == (2, 7, embed) and torch.isfinite(out).all()
    # Recompute with the module's own projections and the reference sampler.
    v = attn.value_proj(value).view(2, num_value, heads, embed // heads)
    off = attn.sampling_offsets(query).view(2, 7, heads, levels, points, 2)
    w = attn.attention_weights(query).view(2, 7, heads, levels * points).softmax(-1)
    w = w.view(2, 7, heads, levels, points)
    norm = torch.stack([shapes[..., 1], shapes[..., 0]], -1)
    loc = ref[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]
    manual = multi_scale_deformable_attn_pytorch(v, shapes, loc, w)
    manual = attn.output_proj(manual) + query  # identity (residual) is the query by default
    assert torch.allclose(out, manual, atol=1e-5)


@needs_shared
def test_real_yolov5n_finds_dog_bicycle_car(yolov5_real):
    from mmattnvis.apis import load_image

    from conftest import SHARED_IMAGES
    img = load_image(osp.join(SHARED_IMAGES, 'dog.jpg'))
    (sample, ) = _infer(yolov5_real, [img])
    pred = sample.pred_instances
    classes = yolov5_real.dataset_meta['classes']
    found = {classes[int(lab)]: float(s) for lab, s in zip(pred.labels, pred.scores) if s > 0.3}
    assert found.get('dog', 0) > 0.5, found
    assert 'bicycle' in found, found
    assert 'car' in found or 'truck' in found, found


def test_stack_versions():
    import mmcv
    import mmdet
    import mmengine
    import mmyolo
    import pytorch_grad_cam  # noqa: F401
    import torchvision
    assert torch.__version__.split('+')[0] == '2.13.0' and '+cpu' not in torch.__version__
    assert torchvision.__version__.startswith('0.28.0')
    assert mmcv.__version__ == '2.0.1' and mmengine.__version__ == '0.10.7'
    assert mmdet.__version__ == '3.3.0' and mmyolo.__version__ == '0.6.0'
