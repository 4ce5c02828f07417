"""DETR-family attention: exact capture, unchanged predictions, query matching, deformable points,
head ablation exactness and restoration, Chefer relevance (batched == per query)."""
import math

import numpy as np
import pytest
import torch

from mmattnvis.apis import build_test_pipeline, prepare_batch, run_test_step
from mmattnvis.capture import AttentionCapture
from mmattnvis.methods import (
    CheferRelevance,
    DecoderCrossAttention,
    DeformableSamplingPoints,
    HeadAblation,
    detections_for_queries,
    first_k_heads,
)
from mmattnvis.methods.relevance import chefer_propagate, normalize_residual
from mmattnvis.render import ImageGeometry
from mmattnvis.utils.errors import UserInputError

from conftest import hook_count
from detr_utils import DEFORMABLE, DETR_FAMILY, small_detr

_MODELS = {}


def model_of(name):
    if name not in _MODELS:
        torch.manual_seed(0)
        _MODELS[name] = small_detr(name)
    return _MODELS[name]


def batch_of(model, sizes=((120, 200), (160, 150))):
    imgs = [np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8)
            for i, (h, w) in enumerate(sizes)]
    return prepare_batch(imgs, build_test_pipeline(model.cfg))


def same_predictions(a, b):
    return all(torch.equal(x.pred_instances.bboxes, y.pred_instances.bboxes)
               and torch.equal(x.pred_instances.scores, y.pred_instances.scores)
               and torch.equal(x.pred_instances.labels, y.pred_instances.labels)
               for x, y in zip(a, b))


@pytest.mark.parametrize('name', list(DETR_FAMILY))
def test_capture_keeps_predictions_and_detaches(name):
    model = model_of(name)
    data = batch_of(model)
    ref = run_test_step(model, data)
    before = hook_count(model)
    with AttentionCapture(model) as cap:
        out = run_test_step(model, data)
    assert same_predictions(ref, out)
    assert hook_count(model) == before
    rec = cap.record
    n_dec = len(model.decoder.layers)
    if name in DEFORMABLE:
        loc = rec.deformable[('decoder_cross', n_dec - 1)]
        assert loc.locations.shape[:2] == (2, 30) and loc.locations.shape[-1] == 2
        assert torch.allclose(loc.weights.sum((-1, -2)), torch.ones(2, 30, 8))
        assert ('decoder_self', 0) in rec.dense and ('encoder', 0) in rec.deformable
    else:
        attn = rec.dense[('decoder_cross', n_dec - 1)]
        h, w = rec.key_shape
        assert attn.shape == (2, 8, 30, h * w)
        assert torch.allclose(attn.sum(-1), torch.ones(2, 8, 30), atol=1e-5)
        # padded keys of the smaller image get no attention
        pad = rec.key_padding[0].reshape(-1)
        if pad.any():
            assert attn[0][..., pad].abs().max() == 0
    dets = detections_for_queries(model, rec, out, score_thr=-1)
    assert [len(d) for d in dets] == [len(s.pred_instances) for s in out]


def test_hooks_removed_when_forward_raises():
    model = model_of('detr')
    before = hook_count(model)
    with pytest.raises(RuntimeError):
        with AttentionCapture(model):
            model.backbone(torch.rand(1, 5, 32, 32))  # wrong channel count
    assert hook_count(model) == before


def _mha_inputs(module):
    store = {}

    def pre(mod, args, kwargs):
        store.update(kwargs)

    return store, module.register_forward_pre_hook(pre, with_kwargs=True)


def _layer_io(layer):
    """Keyword inputs and outputs of every call of ``layer``, and a remover of the hooks."""
    store, h1 = _mha_inputs(layer)
    outs = []
    h2 = layer.register_forward_hook(lambda m, a, k, o: outs.append(o), with_kwargs=True)
    return store, outs, lambda: (h1.remove(), h2.remove())


def test_detr_weights_equal_independent_softmax():
    model = model_of('detr')
    data = batch_of(model)
    layer = model.decoder.layers[-1].cross_attn
    store, handle = _mha_inputs(layer)
    try:
        with AttentionCapture(model, parts=['decoder_cross'], layers=[-1]) as cap:
            run_test_step(model, data)
    finally:
        handle.remove()
    captured = cap.record.dense[('decoder_cross', len(model.decoder.layers) - 1)]
    mha = layer.attn
    e = mha.embed_dim
    heads = mha.num_heads
    q = (store['query'] + store['query_pos']) @ mha.in_proj_weight[:e].T + mha.in_proj_bias[:e]
    k = (store['key'] + store['key_pos']) @ mha.in_proj_weight[e:2 * e].T \
        + mha.in_proj_bias[e:2 * e]
    b, lq, _ = q.shape
    lk = k.shape[1]
    q = q.view(b, lq, heads, e // heads).transpose(1, 2)
    k = k.view(b, lk, heads, e // heads).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(e // heads)
    mask = store.get('key_padding_mask')
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :], float('-inf'))
    manual = scores.softmax(-1)
    assert torch.allclose(captured, manual, atol=1e-5)


def test_conditional_weights_reproduce_module_output():
    model = model_of('conditional_detr')
    data = batch_of(model)
    layer = model.decoder.layers[-1].cross_attn
    store, outs, unhook = _layer_io(layer)
    try:
        with AttentionCapture(model, parts=['decoder_cross'], layers=[-1]) as cap:
            run_test_step(model, data)
    finally:
        unhook()
    attn = cap.record.dense[('decoder_cross', len(model.decoder.layers) - 1)]
    v = layer.v_proj(store['key'])
    b, lk, c = v.shape
    heads = layer.num_heads
    v = v.view(b, lk, heads, c // heads).transpose(1, 2)
    per_head = (attn @ v).transpose(1, 2).reshape(b, -1, c)
    manual = store['query'] + layer.out_proj(per_head)
    assert torch.allclose(outs[0], manual, atol=1e-5)


@pytest.mark.parametrize('name', DEFORMABLE)
def test_deformable_points_reproduce_msda_output(name):
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    model = model_of(name)
    data = batch_of(model)
    layer = model.decoder.layers[-1].cross_attn
    store, outs, unhook = _layer_io(layer)
    try:
        with AttentionCapture(model, parts=['decoder_cross'], layers=[-1]) as cap:
            samples = run_test_step(model, data)
    finally:
        unhook()
    rec = cap.record.deformable[('decoder_cross', len(model.decoder.layers) - 1)]
    value = layer.value_proj(store['value'])
    if store.get('key_padding_mask') is not None:
        value = value.masked_fill(store['key_padding_mask'][..., None], 0.0)
    b, nv, _ = value.shape
    value = value.view(b, nv, layer.num_heads, -1)
    out = multi_scale_deformable_attn_pytorch(value, rec.spatial_shapes, rec.locations,
                                              rec.weights)
    manual = layer.output_proj(out) + store['query']
    assert torch.allclose(outs[0], manual, atol=1e-5)
    # drawn points: every head, level and point, in original-image pixels
    dets = detections_for_queries(model, cap.record, samples, -1)
    geom = ImageGeometry.from_metainfo(samples[0].metainfo)
    maps = DeformableSamplingPoints().compute((cap.record, 'decoder_cross',
                                               len(model.decoder.layers) - 1, 0,
                                               dets[0][0].query, geom))
    pts = maps[0].meta['points']
    assert pts.shape == (8 * layer.num_levels * layer.num_points, 5)
    assert np.isclose(pts[:, 2].sum(), 8.0, atol=1e-4)  # each head's weights sum to 1
    assert np.isclose(maps[0].data.sum(), 8.0, atol=1e-3)


def test_query_matching_gives_the_query_box():
    model = model_of('detr')
    data = batch_of(model)
    with AttentionCapture(model, parts=['decoder_cross']) as cap:
        samples = run_test_step(model, data)
    dets = detections_for_queries(model, cap.record, samples, -1)
    boxes = cap.record.head_outputs[1]  # (B, Q, 4) normalised cx, cy, w, h
    for b, sample in enumerate(samples):
        in_h, in_w = sample.metainfo['img_shape']
        sx, sy = sample.metainfo['scale_factor']
        for d in dets[b][:5]:
            cx, cy, w, h = boxes[b, d.query].tolist()
            x1 = (cx - w / 2) * in_w / sx
            y1 = (cy - h / 2) * in_h / sy
            assert abs(x1 - max(0, d.bbox[0])) < 1.0 or d.bbox[0] <= 0.5
            assert abs(y1 - max(0, d.bbox[1])) < 1.0 or d.bbox[1] <= 0.5


def test_decoder_maps_heads_and_fusion():
    model = model_of('detr')
    data = batch_of(model)
    with AttentionCapture(model, parts=['decoder_cross']) as cap:
        samples = run_test_step(model, data)
    det = detections_for_queries(model, cap.record, samples, -1)[0][0]
    per_head = DecoderCrossAttention(fusion=None).compute((cap.record, det, 1))
    assert len(per_head) == 8 and per_head[3].label == 'L1 h3'
    mean = DecoderCrossAttention(fusion='mean').compute((cap.record, det, 1))[0]
    assert np.allclose(mean.data, np.mean([m.data for m in per_head], 0), atol=1e-6)
    mx = DecoderCrossAttention(heads=[1, 2], fusion='max').compute((cap.record, det, 1))[0]
    assert np.allclose(mx.data, np.maximum(per_head[1].data, per_head[2].data))
    with pytest.raises(UserInputError, match='head 9 does not exist'):
        DecoderCrossAttention(heads=[9]).compute((cap.record, det, 1))


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize('name', ['detr', 'dino'])
def test_head_ablation_restores_exactly(name):
    model = model_of(name)
    data = batch_of(model)
    ref = run_test_step(model, data)
    before = _params(model)
    with HeadAblation(model, first_k_heads(model, 3)):
        changed = run_test_step(model, data)
    assert not same_predictions(ref, changed)
    after = _params(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(RuntimeError, match='inside'):
        with HeadAblation(model, {('decoder_cross', -1): [0, 5]}):
            raise RuntimeError('inside')
    after = _params(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert same_predictions(ref, run_test_step(model, data))


def test_one_head_off_equals_manual_computation():
    model = model_of('detr')
    data = batch_of(model)
    layer = model.decoder.layers[-1].cross_attn
    store, outs, unhook = _layer_io(layer)
    try:
        with AttentionCapture(model, parts=['decoder_cross'], layers=[-1]) as cap:
            run_test_step(model, data)
        with HeadAblation(model, {('decoder_cross', -1): [2]}):
            run_test_step(model, data)
    finally:
        unhook()
    attn = cap.record.dense[('decoder_cross', len(model.decoder.layers) - 1)]
    mha = layer.attn
    e, heads = mha.embed_dim, mha.num_heads
    d = e // heads
    v = store['value'] @ mha.in_proj_weight[2 * e:].T + mha.in_proj_bias[2 * e:]
    b, lk, _ = v.shape
    v = v.view(b, lk, heads, d).transpose(1, 2)
    per_head = attn @ v  # (B, heads, Lq, d)
    per_head[:, 2] = 0  # head 2 contributes nothing
    concat = per_head.transpose(1, 2).reshape(b, -1, e)
    manual = store['query'] + concat @ mha.out_proj.weight.T + mha.out_proj.bias
    assert torch.allclose(outs[1], manual, atol=1e-5)
    assert not torch.allclose(outs[0], outs[1], atol=1e-4)


def test_normalize_residual_and_rules_by_hand():
    r = torch.tensor([[2.0, 1.0], [0.5, 1.5]])
    # minus identity: [[1, 1], [0.5, 0.5]] -> rows / sum -> [[.5, .5], [.5, .5]] -> + identity
    assert torch.allclose(normalize_residual(r), torch.tensor([[1.5, 0.5], [0.5, 1.5]]))
    assert torch.allclose(normalize_residual(torch.eye(3)), torch.eye(3))  # zero rows stay 0
    enc = [torch.tensor([[0.5, 0.5], [0.0, 1.0]])]
    dec_self = [torch.tensor([[1.0]])]
    cross = [torch.tensor([[0.25, 0.75]])]
    r_qi, _ = chefer_propagate(enc, dec_self, cross)
    r_ii = torch.eye(2) + enc[0]  # [[1.5, .5], [0, 2]]
    norm_ii = normalize_residual(r_ii)  # row0: [.5,.5]->[1,0]... computed explicitly below
    expected_ii = torch.tensor([[1.0 + 0.5, 0.5], [0.0, 1.0 + 1.0]])
    hat = expected_ii - torch.eye(2)
    hat = hat / hat.sum(-1, keepdim=True)
    assert torch.allclose(norm_ii, hat + torch.eye(2))
    r_qq = torch.eye(1) + dec_self[0]  # 2
    norm_qq = normalize_residual(r_qq)  # 1x1: hat=1 -> 1 -> +1 = 2
    assert torch.allclose(r_qi, norm_qq.t() @ cross[0] @ norm_ii)


def test_relevance_batched_equals_per_query_and_is_per_detection():
    model = model_of('detr')
    data = batch_of(model)
    ref = run_test_step(model, data)
    batched = CheferRelevance(per_layer=True, max_detections=4).explain(model, data, -1)
    looped = CheferRelevance(batched=False, max_detections=4).explain(model, data, -1)
    assert same_predictions(ref, batched.samples)
    for b in range(2):
        assert len(batched.maps[b]) == 4
        for mb, ml in zip(batched.maps[b], looped.maps[b]):
            assert np.allclose(mb['relevance'][0].data, ml['relevance'][0].data, atol=1e-7)
            assert len(mb['relevance']) == 1 + len(model.decoder.layers)
    maps = [m['relevance'][0].data for m in batched.maps[0]]
    assert not np.allclose(maps[0], maps[1])  # different queries, different maps
    assert hook_count(model) == 0


def test_relevance_refuses_deformable_models():
    model = model_of('deformable_detr')
    with pytest.raises(UserInputError, match='dense attention'):
        CheferRelevance().explain(model, batch_of(model), -1)
