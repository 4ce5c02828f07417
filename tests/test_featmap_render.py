"""Reductions, rendering and parity with MMEngine's Visualizer.draw_featmap."""
import numpy as np
import pytest
import torch

from mmattnvis.methods import (
    PixelWiseMax,
    RawChannels,
    SelectMax,
    SqueezeMean,
    TopKChannels,
    build_reduction,
)
from mmattnvis.render import (
    ImageGeometry,
    align_to_image,
    auto_arrange,
    heatmap_overlay,
    normalize_to_uint8,
)
from mmattnvis.utils.errors import UserInputError
from mmattnvis.visualization import FeatMapVisualizer


def _featmap(c=16, h=12, w=20, seed=0, boost=None):
    g = torch.Generator().manual_seed(seed)
    fm = torch.rand(c, h, w, generator=g)
    if boost is not None:
        fm[boost] += 0.5  # a clear winner for select_max / top-k
    return fm


def test_reductions_follow_their_definitions():
    fm = _featmap(boost=5)
    assert np.allclose(SqueezeMean()(fm)[0].data, fm.mean(0).numpy())
    sel = SelectMax()(fm)[0]
    assert sel.meta['channel'] == 5 and np.array_equal(sel.data, fm[5].numpy())
    assert np.array_equal(PixelWiseMax()(fm)[0].data, fm.max(0).values.numpy())
    top = TopKChannels(4)(fm)
    sums = fm.sum(dim=(1, 2))
    assert [m.meta['channel'] for m in top] == torch.argsort(sums, descending=True)[:4].tolist()
    assert top[0].label == 'channel: 5'
    assert len(TopKChannels(40)(fm)) == 16  # capped at the channel count
    assert RawChannels()(fm[:1])[0].data.shape == (12, 20)
    assert RawChannels()(fm[:3])[0].data.shape == (12, 20, 3)


def test_reduction_errors_are_clear():
    with pytest.raises(UserInputError, match='channel dimension must be 1 or 3 when topk is '
                       'less than 1, but the channel dimension you input is 4'):
        RawChannels()(_featmap(c=4))
    with pytest.raises(UserInputError, match='unknown channel_reduction'):
        build_reduction('mean')
    with pytest.raises(UserInputError, match='fewer than topk=5'):
        build_reduction(None, topk=5, arrangement=(2, 2))
    assert isinstance(build_reduction('None', topk=0), RawChannels)
    assert isinstance(build_reduction(None, topk=4, arrangement=(2, 2)), TopKChannels)
    with pytest.raises(UserInputError, match=r'\(C, H, W\)'):
        SqueezeMean()(torch.rand(2, 3, 4, 5))


@pytest.mark.parametrize('reduction', ['squeeze_mean', 'select_max'])
def test_parity_with_mmengine_draw_featmap(reduction):
    from mmengine.visualization import Visualizer
    fm = _featmap(c=32, h=15, w=20, seed=1, boost=7)
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    ref = Visualizer.draw_featmap(fm, img, channel_reduction=reduction, alpha=0.4)
    ours = FeatMapVisualizer.draw_featmap(fm, img, channel_reduction=reduction, alpha=0.4)
    assert ours.shape == ref.shape == (120, 160, 3)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    # identical up to float rounding of the interpolation/normalisation
    assert (diff == 0).mean() > 0.98, (diff == 0).mean()
    assert diff.max() <= 12 and diff.mean() < 0.2


def test_topk_grid_layout_matches_mmengine_size():
    from mmengine.visualization import Visualizer
    fm = _featmap(c=8, h=10, w=10, seed=2, boost=3)
    img = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    ours = FeatMapVisualizer.draw_featmap(fm, img, channel_reduction=None, topk=4,
                                          arrangement=(2, 3))
    assert ours.shape == (80, 180, 3)
    ref = Visualizer.draw_featmap(fm, img, channel_reduction=None, topk=4, arrangement=(2, 3))
    assert abs(ref.shape[0] - ours.shape[0]) <= 2 and abs(ref.shape[1] - ours.shape[1]) <= 2
    # the first cell is the top channel (3), rendered like a single select_max map
    single = FeatMapVisualizer.draw_featmap(fm, img, channel_reduction='select_max')
    cell = ours[:40, :60]
    assert np.array_equal(cell[20:], single[20:])  # the label covers the top rows
    # empty cells stay white
    assert (ours[40:, 120:] == 255).all()


def test_normalisation_and_overlay():
    m = np.array([[0., 1.], [2., 4.]], np.float32)
    assert normalize_to_uint8(m).tolist() == [[0, 63], [127, 255]]
    assert normalize_to_uint8(np.ones((2, 2))).max() == 0
    img = np.zeros((2, 2, 3), np.uint8)
    out = heatmap_overlay(m, img, alpha=1.0)
    assert tuple(out[1, 1]) == (128, 0, 0)  # JET's top is dark red (RGB)
    assert tuple(out[0, 0]) == (0, 0, 128)  # and its bottom dark blue


def test_align_identity_and_stretch():
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    same = align_to_image(m, ImageGeometry.identity((3, 4)))
    assert np.allclose(same, m)
    up = align_to_image(m, ImageGeometry.identity((6, 8)))
    assert up.shape == (6, 8)
    stretched = align_to_image(m, None, out_shape=(6, 8))
    assert np.allclose(up, stretched, atol=1e-5)


def test_auto_arrange_sizes():
    panels = [np.zeros((10, 20, 3), np.uint8), np.zeros((12, 15, 3), np.uint8),
              np.zeros((5, 5, 3), np.uint8)]
    grid = auto_arrange(panels, pad=2)
    assert grid.shape == (12 * 2 + 2, 20 * 2 + 2, 3)


def test_prediction_layer_matches_detlocalvisualizer():
    """The transparent-layer path draws what DetLocalVisualizer draws on the image itself."""
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (180, 260, 3), dtype=np.uint8)
    sample = DetDataSample()
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[20., 30., 120., 150.], [140., 10., 250., 90.], [5, 5, 50, 40]]),
        scores=torch.tensor([0.9, 0.6, 0.1]), labels=torch.tensor([0, 2, 1]))
    meta = {'classes': ('circle', 'square', 'triangle'),
            'palette': [(220, 20, 60), (0, 128, 255), (0, 200, 0)]}
    ref_vis = DetLocalVisualizer(name='ref_det_vis')
    ref_vis.dataset_meta = meta
    pred = sample.pred_instances[sample.pred_instances.scores > 0.3]
    ref = ref_vis._draw_instances(img, pred, meta['classes'], meta['palette'])
    ours_vis = FeatMapVisualizer(name='ours_det_vis')
    ours_vis.dataset_meta = meta
    ours = ours_vis.draw_instances_on(img, sample, score_thr=0.3)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    changed = np.any(ref != img, axis=2)
    assert changed.sum() > 500  # boxes and labels were drawn
    assert diff.mean() < 1.0 and (diff.max(axis=2) <= 8).mean() > 0.995
    # the low-score box is not drawn, and the image itself is not resampled
    assert (ours[8:25, 2:9] == img[8:25, 2:9]).all()
    # the normal (image) drawing path still works after layer mode
    again = ours_vis._draw_instances(img, pred, meta['classes'], meta['palette'])
    assert np.abs(again.astype(int) - ref.astype(int)).max() == 0


def test_layer_redraw_keeps_nothing_from_the_previous_drawing():
    """Layer mode clears only the artists of the last drawing (not ``cla()``): a second layer
    must equal the same layer drawn by a fresh visualizer, also after a normal drawing."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from mmattnvis.visualization import FeatMapVisualizer
    meta = {'classes': ('a', 'b'), 'palette': [(255, 0, 0), (0, 0, 255)]}

    def sample(box, label):
        s = DetDataSample()
        s.pred_instances = InstanceData(bboxes=torch.tensor([box], dtype=torch.float32),
                                        scores=torch.tensor([0.9]), labels=torch.tensor([label]))
        return s

    a, b = sample([10, 10, 80, 60], 0), sample([100, 40, 180, 110], 1)
    fresh = FeatMapVisualizer(name='layer_fresh')
    fresh.dataset_meta = meta
    ref = fresh.draw_instances_layer((120, 200), b)
    vis = FeatMapVisualizer(name='layer_reused')
    vis.dataset_meta = meta
    vis.draw_instances_layer((150, 240), a)
    assert np.array_equal(vis.draw_instances_layer((120, 200), b), ref)
    vis._draw_instances(np.zeros((120, 200, 3), np.uint8), a.pred_instances, meta['classes'],
                        meta['palette'])
    again = vis.draw_instances_layer((120, 200), b)
    assert np.array_equal(again, ref) and again[..., 3].any()


def test_blend_rgba_equals_the_over_operator_and_reuses_its_layer():
    from mmattnvis.render.image import SparseLayer, blend_rgba
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    layer = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    layer[..., 3][rng.random((30, 40)) < 0.6] = 0  # mostly transparent, like boxes and labels
    a = layer[..., 3:4] / 255.0
    ref = np.clip(np.floor(layer[..., :3] * a + base * (1 - a) + 0.5), 0, 255).astype(np.uint8)
    out = blend_rgba(base, layer)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    assert (out[layer[..., 3] == 0] == base[layer[..., 3] == 0]).all()
    sparse = SparseLayer(layer)
    work = base.copy()
    assert blend_rgba(work, sparse, inplace=True) is work and np.array_equal(work, out)
    with pytest.raises(ValueError, match='layer of'):
        blend_rgba(base[:10], sparse)


def _scene():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(4)
    img = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)
    sample = DetDataSample()
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[10., 15., 60., 75.], [70., 5., 125., 45.]]),
        scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 1]))
    featmaps = {'neck.0': _featmap(8, 12, 16, seed=1), 'neck.1': _featmap(8, 6, 8, seed=2)}
    vis = FeatMapVisualizer(name=f'scene_{id(rng)}')
    vis.dataset_meta = {'classes': ('a', 'b'), 'palette': [(255, 0, 0), (0, 0, 255)]}
    return img, sample, featmaps, vis


@pytest.mark.parametrize('reduction,topk', [('select_max', 0), (None, 4)])
def test_draw_featmaps_equals_panels_rendered_one_by_one(reduction, topk):
    """Panels with the shared sparse prediction layer equal panels rendered one by one."""
    from mmattnvis.render import add_title
    from mmattnvis.visualization import render_featmap
    from mmattnvis.visualization.featmap_visualizer import describe
    img, sample, featmaps, vis = _scene()
    out = vis.draw_featmaps(featmaps, img, sample, channel_reduction=reduction, topk=topk,
                            arrangement=(2, 2))
    layer = vis.draw_instances_layer(img.shape[:2], sample)
    method = build_reduction(reduction, topk, (2, 2))
    panels = [add_title(render_featmap(fm, img, method, None, 0.5, 'jet', (2, 2), layer),
                        f"{name}  ({'x'.join(str(s) for s in fm.shape)}, {describe(method)})")
              for name, fm in featmaps.items()]
    assert np.array_equal(out, auto_arrange(panels))
