"""Faithfulness metrics on constructed cases with known answers."""
import numpy as np
import pytest

from mmattnvis.metrics import (
    auc,
    box_iou,
    detection_similarity,
    energy_pointing_game,
    perturbation_auc,
    perturbation_images,
    pointing_game,
    random_saliency,
)


def peak_map(h=40, w=60, r=10, c=20):
    m = np.zeros((h, w), np.float32)
    m[r, c] = 1.0
    return m


def test_pointing_game_hits_misses_and_tolerance():
    m = peak_map()  # peak at pixel (r=10, c=20), centre (20.5, 10.5)
    assert pointing_game(m, (15, 5, 25, 15))
    assert not pointing_game(m, (30, 5, 40, 15))
    # 4.5 px left of the box edge at x=25: a miss without tolerance, a hit with 5 px.
    assert not pointing_game(m, (25, 5, 35, 15))
    assert pointing_game(m, (25, 5, 35, 15), tolerance=5)
    assert not pointing_game(m, (25, 5, 35, 15), tolerance=4)
    # A flat map points nowhere; any of several maxima counts.
    assert not pointing_game(np.ones((10, 10)), (0, 0, 10, 10))
    m2 = m.copy()
    m2[30, 50] = 1.0
    assert pointing_game(m2, (45, 25, 55, 35))


def test_energy_pointing_game_exact_shares():
    ones = np.ones((40, 60), np.float32)
    assert energy_pointing_game(ones, (0, 0, 30, 20)) == pytest.approx(30 * 20 / (40 * 60))
    inside = np.zeros((40, 60), np.float32)
    inside[5:15, 10:20] = 3.0
    assert energy_pointing_game(inside, (10, 5, 20, 15)) == pytest.approx(1.0)
    assert energy_pointing_game(inside, (0, 0, 15, 10)) == pytest.approx(25 / 100)
    # Negative values carry no energy; an all-zero map has none inside.
    neg = inside - 10.0
    assert energy_pointing_game(neg, (10, 5, 20, 15)) == 0.0


def test_box_iou_and_similarity():
    assert box_iou((0, 0, 10, 10), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
                   ) == pytest.approx([1.0, 50 / 150, 0.0])
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.2, 0.9, 0.7])
    labels = np.array([0, 0, 1])
    # Same class only: max(1.0 * 0.2, 1/3 * 0.9) = 0.3.
    assert detection_similarity((0, 0, 10, 10), 0, boxes, scores, labels) == pytest.approx(0.3)
    assert detection_similarity((0, 0, 10, 10), 1, boxes, scores, labels) == pytest.approx(0.7)
    assert detection_similarity((0, 0, 10, 10), 2, boxes, scores, labels) == 0.0


def test_auc_trapezoid():
    x = np.linspace(0, 1, 11)
    assert auc(x, np.ones(11)) == pytest.approx(1.0)
    assert auc(x, x) == pytest.approx(0.5)
    assert auc([0, 0.5, 1], [1, 0, 0]) == pytest.approx(0.25)


def test_perturbation_images_follow_the_map_order():
    rng = np.random.default_rng(0)
    img = rng.integers(1, 255, (8, 10, 3), dtype=np.uint8)
    sal = np.arange(80, dtype=np.float32).reshape(8, 10)  # last pixel most salient
    fr, dels = perturbation_images(img, sal, 'deletion', steps=4)
    assert fr.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert np.array_equal(dels[0], img) and not dels[-1].any()
    removed = (dels[1] == 0).all(-1).ravel()
    assert removed.sum() == 20 and removed[-20:].all()  # the 20 most salient pixels
    _, ins = perturbation_images(img, sal, 'insertion', steps=4, baseline=np.zeros_like(img))
    assert not ins[0].any() and np.array_equal(ins[-1], img)
    shown = (ins[2] != 0).all(-1).ravel()
    assert shown.sum() == 40 and shown[-40:].all()
    with pytest.raises(ValueError):
        perturbation_images(img, sal[:4], 'deletion')


def test_deletion_auc_known_values():
    """Score = share of a box (a quarter of the image) still intact. A map that ranks the box
    first gives AUC a/2 = 0.125, the inverted map (1 - a) + a/2 = 0.875, random ~ 0.5."""
    h, w = 40, 40
    img = np.full((h, w, 3), 200, np.uint8)
    box = (0, 0, 20, 20)

    def score(images):
        return [float((im[0:20, 0:20] != 0).all(-1).mean()) for im in images]

    good = np.zeros((h, w), np.float32)
    good[0:20, 0:20] = 1.0
    a_good, curve = perturbation_auc(img, good, score, 'deletion', steps=20)
    a_bad, _ = perturbation_auc(img, 1 - good, score, 'deletion', steps=20)
    a_rand, _ = perturbation_auc(img, random_saliency((h, w), np.random.default_rng(1)), score,
                                 'deletion', steps=20)
    assert a_good == pytest.approx(0.125)
    assert a_bad == pytest.approx(0.875)
    assert a_good < a_rand < a_bad
    assert curve[0] == 1.0 and curve[5] == 0.0
    a_ins, _ = perturbation_auc(img, good, score, 'insertion', steps=20,
                                baseline=np.zeros_like(img))
    assert a_ins == pytest.approx(1 - 0.125)
    assert energy_pointing_game(good, box) == pytest.approx(1.0)


def test_random_saliency_is_seeded_and_blobby():
    a = random_saliency((50, 80), np.random.default_rng(3))
    b = random_saliency((50, 80), np.random.default_rng(3))
    c = random_saliency((50, 80), np.random.default_rng(4))
    assert a.shape == (50, 80) and np.array_equal(a, b) and not np.array_equal(a, c)
    # Smooth: neighbouring pixels differ far less than independent noise would.
    assert np.abs(np.diff(a, axis=1)).mean() < 0.1
