"""ODAM-protocol metrics (mmattnvis.metrics.odam_protocol) on constructed cases."""
import numpy as np
import pytest

from mmattnvis.metrics import (
    object_discrimination_index,
    odam_perturbation_auc,
    odam_score,
    pointing_game,
    pointing_game_strict,
)

BOX = (2, 2, 7, 7)  # 25 pixels of a 10 x 10 image


def _map_with_max_at(row, col, shape=(10, 10)):
    sal = np.zeros(shape, np.float32)
    sal[row, col] = 1.0
    return sal


def test_pointing_game_strictly_inside():
    sal = _map_with_max_at(5, 5)  # pixel centre (5.5, 5.5)
    assert pointing_game_strict(sal, (5, 5, 10, 10))
    # On the boundary: a hit for the ordinary pointing game, not for the strict one.
    assert pointing_game(sal, (0, 0, 5.5, 10)) and not pointing_game_strict(sal, (0, 0, 5.5, 10))
    assert not pointing_game_strict(sal, (0, 0, 5, 5))
    assert not pointing_game_strict(np.ones((10, 10)), (0, 0, 10, 10))  # flat: points nowhere


def test_odam_score_best_same_class_above_iou():
    boxes = np.array([[2, 2, 7, 7], [2, 2, 7, 6], [2, 2, 4, 7], [2, 2, 7, 7]], np.float32)
    scores = np.array([0.3, 0.6, 0.9, 0.95])
    labels = np.array([1, 1, 1, 0])
    # IoU with BOX: 1.0, 0.8, 0.4 (not > 0.5), and the last is another class.
    assert odam_score(BOX, 1, boxes, scores, labels) == pytest.approx(0.6)
    assert odam_score(BOX, 2, boxes, scores, labels) == 0.0
    assert odam_score(BOX, 1, boxes[2:3], scores[2:3], labels[2:3]) == 0.0


def _box_brightness_detector(pred_box=BOX, label=1, scale=1.0):
    """One prediction at ``pred_box`` whose score is the mean brightness inside ``BOX``."""

    def predict(images):
        return [(np.array([pred_box], np.float32),
                 np.array([scale * img[2:7, 2:7].mean() / 255.0]), np.array([label]))
                for img in images]

    return predict


@pytest.mark.parametrize('scale', [1.0, 0.5])
def test_odam_deletion_and_insertion_known_areas(scale):
    img = np.full((10, 10, 3), 255, np.uint8)
    good = np.zeros((10, 10), np.float32)
    good[2:7, 2:7] = 1.0
    black = np.zeros_like(img)
    predict = _box_brightness_detector(scale=scale)
    # Steps at 0, 25, 50, 75, 100 pixels: the good map removes the whole box in the first step.
    area, curve = odam_perturbation_auc(img, good, BOX, 1, predict, 'deletion', 4)
    np.testing.assert_allclose(curve, [1, 0, 0, 0, 0])
    assert area == pytest.approx(0.125)
    area, curve = odam_perturbation_auc(img, 1 - good, BOX, 1, predict, 'deletion', 4)
    np.testing.assert_allclose(curve, [1, 1, 1, 1, 0])
    assert area == pytest.approx(0.875)
    area, curve = odam_perturbation_auc(img, good, BOX, 1, predict, 'insertion', 4,
                                        baseline=black)
    np.testing.assert_allclose(curve, [0, 1, 1, 1, 1])
    assert area == pytest.approx(0.875)


def test_odam_deletion_ignores_other_classes_and_poor_overlap():
    img = np.full((10, 10, 3), 255, np.uint8)
    sal = np.random.default_rng(0).random((10, 10))
    for predict in (_box_brightness_detector(label=0),
                    _box_brightness_detector(pred_box=(2, 2, 4, 7))):
        area, curve = odam_perturbation_auc(img, sal, BOX, 1, predict, 'deletion', 4)
        assert area == 0.0 and not curve.any()
    with pytest.raises(ValueError, match='returned 1 results'):
        odam_perturbation_auc(img, sal, BOX, 1, lambda ims: [None], 'deletion', 4)


def test_object_discrimination_index():
    sal = np.zeros((10, 10))
    sal[0:2, 0:2] = 1.0   # own box (0, 0, 2, 2): energy 4
    sal[5:7, 5:7] = 3.0   # other box (5, 5, 7, 7): energy 12
    sal[9, 9] = 100.0     # background: not an object, not counted
    assert object_discrimination_index(sal, (0, 0, 2, 2), [(5, 5, 7, 7)]) == pytest.approx(0.75)
    assert object_discrimination_index(sal, (5, 5, 7, 7), [(0, 0, 2, 2)]) == pytest.approx(0.25)
    # Overlapping boxes: the shared pixels belong to the own object only.
    assert object_discrimination_index(sal, (0, 0, 2, 2), [(0, 0, 2, 2)]) == 0.0
    assert object_discrimination_index(sal, (0, 0, 2, 2), []) is None
    assert object_discrimination_index(np.zeros((10, 10)), (0, 0, 2, 2), [(5, 5, 7, 7)]) == 0.0
