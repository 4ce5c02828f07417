"""Metrics a degenerate map cannot win (issue 26): constructed cases with known answers.

A triangle object in its box; a map that covers the object against three degenerate maps: one
cell at the object (a 1x1 head's gradient), a wide blur peaking at the box centre, and the box
itself. The "detector" scores the share of the object's pixels that are intact, so insertion and
deletion follow how much of the object a map ranks first.
"""
import cv2
import numpy as np
import pytest

from mmattnvis.apis.faithfulness_runner import BASELINES, FaithfulnessOptions
from mmattnvis.apis.options import OptionError
from mmattnvis.datasets import decode_rle, encode_rle, make_shapes_image
from mmattnvis.metrics import (
    SANITY_THRESHOLD,
    above_half_max,
    box_blur_saliency,
    box_saliency,
    effective_area,
    energy_in_mask,
    mask_iou,
    perturbation_auc,
    perturbation_images,
    pointing_game,
    sanity_passed,
    spearman,
)

H = W = 64
BOX = (16, 20, 48, 52)  # x1, y1, x2, y2: 32 x 32


@pytest.fixture(scope='module')
def scene():
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, [np.array([[16, 51], [47, 51], [31, 20]], np.int32)], 1)
    mask = mask.astype(bool)
    rng = np.random.default_rng(0)
    img = rng.integers(1, 255, (H, W, 3), dtype=np.uint8)
    cell = np.zeros((H, W), np.float32)
    cell[40:44, 28:32] = 1.0  # one 4-px cell inside the object
    yy, xx = np.mgrid[0:H, 0:W]
    blur = np.exp(-((xx - 32) ** 2 + (yy - 36) ** 2) / (2 * 20.0 ** 2)).astype(np.float32)
    box = np.zeros((H, W), np.float32)
    box[20:52, 16:48] = 1.0
    maps = {'object': mask.astype(np.float32), 'cell': cell, 'blur': blur, 'box': box}
    return img, mask, maps


def _object_intact(img, mask):
    def score(images):
        return [float((im == img).all(-1)[mask].mean()) for im in images]
    return score


def _scores(scene):
    img, mask, maps = scene
    out = {}
    for name, sal in maps.items():
        ins, _ = perturbation_auc(img, sal, _object_intact(img, mask), 'insertion', steps=20,
                                  rng=np.random.default_rng(1))
        dele, _ = perturbation_auc(img, sal, _object_intact(img, mask), 'deletion', steps=20,
                                   rng=np.random.default_rng(1))
        out[name] = dict(insertion=ins, deletion=dele, oa=ins - dele,
                         mask_iou=mask_iou(sal, mask), energy_mask=energy_in_mask(sal, mask),
                         effective_area=effective_area(sal, BOX))
    return out


def test_degenerate_maps_lose_on_insertion_oa_and_mask_iou(scene):
    s = _scores(scene)
    good = s['object']
    assert good['mask_iou'] == pytest.approx(1.0) and good['energy_mask'] == pytest.approx(1.0)
    for name in ('cell', 'blur', 'box'):
        for key in ('insertion', 'oa', 'mask_iou'):
            assert s[name][key] < good[key], (name, key, s[name][key], good[key])
        assert s[name]['deletion'] > good['deletion'], name
    assert s['blur']['energy_mask'] < 0.5 and s['box']['energy_mask'] < 0.6
    # energy in the mask, like the pointing game, is won by one cell inside the object: it is
    # a column, not a criterion on its own
    assert s['cell']['energy_mask'] == pytest.approx(1.0)
    # by clear margins where the map is degenerate in size
    assert s['cell']['mask_iou'] < 0.05 and good['insertion'] - s['cell']['insertion'] > 0.3
    assert s['box']['mask_iou'] == pytest.approx(scene[1].sum() / 32 ** 2)  # the object's share
    assert s['blur']['mask_iou'] < 0.35


def test_effective_area_tells_one_cell_from_the_object_but_not_alone(scene):
    s = _scores(scene)
    assert s['cell']['effective_area'] == pytest.approx(16 / 32 ** 2)
    assert s['object']['effective_area'] == pytest.approx(scene[1].sum() / 32 ** 2)
    # the box and a blur fill their box: effective area alone is no criterion (see insertion)
    assert s['box']['effective_area'] == 1.0 and s['blur']['effective_area'] > 0.9


def test_the_runners_box_and_blur_baselines():
    shape, box = (50, 80), (10.5, 5, 40.5, 45)
    b = box_saliency(shape, box)
    assert b.sum() == 31 * 40 and effective_area(b, box) == 1.0  # outward rounding, as the metrics
    blob = box_blur_saliency(shape, box)
    assert pointing_game(blob, box) and np.unravel_index(blob.argmax(), shape) == (24, 25)
    # its half-maximum part is the box's inscribed ellipse, whatever the box's aspect
    assert effective_area(blob, box) == pytest.approx(np.pi / 4, abs=0.03)
    assert above_half_max(blob)[:, :10].sum() == 0 and above_half_max(blob)[:5].sum() == 0
    # deletion / insertion see only the pixel order: a blob twice as wide orders them alike
    wide = box_blur_saliency(shape, (-4.5, -15, 55.5, 65))
    assert spearman(blob, wide) == pytest.approx(1.0)
    # clipped at the image's edge, still the same blob
    edge = box_blur_saliency(shape, (60, 30, 100, 70))
    assert edge.shape == shape and np.isfinite(edge).all() and pointing_game(edge, (60, 30, 80, 50))
    rng = np.random.default_rng(0)
    assert [k for k in BASELINES] == ['random', 'box', 'blur']
    assert np.array_equal(BASELINES['box'](shape, box, rng), b)
    FaithfulnessOptions(methods=[], baselines=['box']).validate()  # baselines alone: a table
    with pytest.raises(OptionError, match="unknown baseline 'cell'"):
        FaithfulnessOptions(baselines=['random', 'cell']).validate()
    with pytest.raises(OptionError, match='no method'):
        FaithfulnessOptions(methods=[], baselines=[]).validate()


def test_threshold_edge_cases():
    assert not above_half_max(np.zeros((4, 4))).any()  # flat: marks nothing
    assert not above_half_max(-np.ones((4, 4))).any()
    assert effective_area(np.full((4, 4), np.nan), (0, 0, 4, 4)) == 0.0
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = 1.0, 0.5
    assert above_half_max(m).sum() == 2 and above_half_max(m, rel=0.6).sum() == 1
    assert mask_iou(np.zeros((4, 4)), np.zeros((4, 4), bool)) == 0.0
    with pytest.raises(ValueError, match='differ in size'):
        mask_iou(np.zeros((4, 4)), np.zeros((3, 4), bool))


def test_spearman_and_the_sanity_criterion():
    rng = np.random.default_rng(0)
    a = rng.random((40, 60))  # within the 64-cell grid: compared pixel by pixel
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, 3 * a ** 2 + 1) == pytest.approx(1.0)  # ranks only
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert abs(spearman(a, rng.random((40, 60)))) < 0.1
    assert spearman(a, np.zeros_like(a)) == 0.0  # a flat map shares no ranking
    # ties get their average rank: a step map against its own blur keeps a high correlation
    step = np.zeros((32, 32))
    step[:, 16:] = 1
    assert spearman(step, cv2.GaussianBlur(step, (0, 0), 2)) > 0.8
    # after full randomisation: pass below the threshold only
    assert sanity_passed({'head': 0.9, 'neck': 0.7, 'backbone': 0.2})
    assert not sanity_passed({'head': 0.2, 'neck': 0.3, 'backbone': SANITY_THRESHOLD})
    assert sanity_passed({}) is None
    assert not sanity_passed({'head': 0.1, 'backbone': 0.9, 'flat': 0.0})  # 'flat' is no stage


def test_shapes_masks_round_trip_and_match_the_boxes():
    rng = np.random.default_rng(3)
    img, objs = make_shapes_image(rng)
    assert objs
    for o in objs:
        m = decode_rle(o['segmentation'])
        assert m.shape == img.shape[:2] and m.sum() == o['area']
        ys, xs = np.nonzero(m)
        x, y, w, h = o['bbox']
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
    for m in (np.zeros((3, 5), bool), np.ones((3, 5), bool), rng.random((7, 9)) > 0.5):
        assert np.array_equal(decode_rle(encode_rle(m)), m)
    with pytest.raises(ValueError):
        decode_rle({'size': [2, 2], 'counts': [1, 2]})


def _in_box(scene, cell):
    img, mask, maps = scene
    out = {}
    for name, sal in maps.items():
        kw = dict(steps=16, rng=np.random.default_rng(1), region=BOX, cell=cell)
        dele, _ = perturbation_auc(img, sal, _object_intact(img, mask), 'deletion', **kw)
        ins, _ = perturbation_auc(img, sal, _object_intact(img, mask), 'insertion', **kw)
        out[name] = ins - dele
    return out


@pytest.mark.parametrize('cell', [2, 4])
def test_in_box_curves_cannot_be_won_by_a_map_of_the_box(scene, cell):
    s = _in_box(scene, cell)
    # the map on the object orders the box's cells object first: well above every degenerate
    for name in ('cell', 'blur', 'box'):
        assert s['object'] - s[name] > 0.15, (name, s)
    # the box itself is flat inside its box: a random order of the cells, OA near 0
    assert abs(s['box']) < 0.15


def test_in_box_perturbation_keeps_the_outside_and_moves_whole_cells():
    rng = np.random.default_rng(0)
    img = rng.integers(1, 255, (40, 50, 3), dtype=np.uint8)
    box = (8, 4, 32, 28)
    flat = np.ones((40, 50), np.float32)
    for mode in ('deletion', 'insertion'):
        fractions, images = perturbation_images(img, flat, mode, steps=6, region=box, cell=4,
                                                rng=np.random.default_rng(0))
        outside = np.ones((40, 50), bool)
        outside[4:28, 8:32] = False
        for im in images:
            assert np.array_equal(im[outside], img[outside])  # only the box moves
        changed = [(im != img).any(-1) for im in images]
        # deletion removes more of the box at every step; insertion starts with all of it gone
        counts = [c.sum() for c in changed]
        assert counts == sorted(counts, reverse=(mode == 'insertion'))
        assert counts[0 if mode == 'deletion' else -1] == 0
        assert counts[-1 if mode == 'deletion' else 0] >= 0.95 * 24 * 24
        # cells of 4 x 4 on the image's grid, one at a time: at most one is partly done
        for c in changed:
            blocks = c[4:28, 8:32].reshape(6, 4, 6, 4).mean(axis=(1, 3))
            assert ((blocks > 0) & (blocks < 1)).sum() <= 1
    # a map outside the box does not matter: only the order of the box's pixels does
    sal = rng.random((40, 50)).astype(np.float32)
    other = sal.copy()
    other[:, 40:] = 5.0
    a = perturbation_images(img, sal, 'deletion', 6, region=box, rng=np.random.default_rng(0))
    b = perturbation_images(img, other, 'deletion', 6, region=box, rng=np.random.default_rng(0))
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))


def test_paired_difference_of_two_methods():
    from mmattnvis.apis.faithfulness_table import FaithfulnessTable
    rows = []
    for d in range(10):
        rows.append(dict(image='a', detection=d, method='good', oa=0.5 + 0.01 * d))
        rows.append(dict(image='a', detection=d, method='blob', oa=0.4 + 0.01 * d
                         + (0.05 if d == 3 else 0.0)))
    rows.append(dict(image='b', detection=0, method='good', oa=None))
    table = FaithfulnessTable(rows)
    p = table.paired('good', 'blob')
    assert p['n'] == 10 and p['higher'] == 10
    assert p['mean'] == pytest.approx(0.095)
    assert 0.05 < p['low'] <= p['mean'] <= p['high'] <= 0.1 + 1e-9
    q = table.paired('blob', 'good')
    assert q['high'] < 0 and q['higher'] == 0
    assert table.paired('good', 'missing') is None
    assert table.paired('good', 'good') == dict(mean=0.0, low=0.0, high=0.0, higher=0, n=10)
