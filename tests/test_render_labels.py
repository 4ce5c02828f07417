"""Labels of overlapping boxes (head-ablation grid) never cover each other; the point marker
stands out on bright and dark backgrounds."""
import numpy as np

from mmattnvis.render.labels import _overlaps, draw_labelled_boxes, place_labels
from mmattnvis.render.points import draw_marker


def test_labels_of_identical_boxes_are_stacked_not_overlapping():
    boxes = [(50, 60, 120, 140)] * 4 + [(52, 58, 118, 139)]
    sizes = [(60, 14)] * 5
    rects = place_labels(boxes, sizes, (200, 300), occupied=[(0, 0, 100, 20)])
    assert rects[0] == (50, 46, 110, 60)  # the first sits above the box's corner
    for i, r in enumerate(rects):
        assert 0 <= r[0] and r[2] <= 300 and 0 <= r[1] and r[3] <= 200
        assert not _overlaps(r, (0, 0, 100, 20))
        assert all(not _overlaps(r, q) for q in rects[:i])
        assert abs(r[0] - 50) <= 2  # same column as the box


def test_crowded_labels_still_never_overlap():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 25))
        corner = rng.uniform(0, 280, (n, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(5, 60, (n, 2))], 1)
        sizes = [(int(rng.integers(40, 90)), 15) for _ in range(n)]
        rects = place_labels(boxes, sizes, (240, 320))
        assert all(not _overlaps(a, b) for i, a in enumerate(rects) for b in rects[:i])


def test_draw_labelled_boxes_draws_each_label():
    img = np.full((120, 200, 3), 128, np.uint8)
    out = draw_labelled_boxes(img, [(20, 40, 90, 100), (22, 42, 92, 102)], ['a 0.9', 'b 0.8'],
                              [(255, 0, 0), (0, 0, 255)])
    red = (out[..., 0] == 255) & (out[..., 1] == 0) & (out[..., 2] == 0)
    blue = (out[..., 0] == 0) & (out[..., 1] == 0) & (out[..., 2] == 255)
    outline = set(range(38, 45)) | set(range(97, 105))  # the boxes' top and bottom edges
    rows_red = set(np.flatnonzero(red.sum(1) > 10)) - outline  # the filled labels
    rows_blue = set(np.flatnonzero(blue.sum(1) > 10)) - outline
    assert len(rows_red) > 8 and len(rows_blue) > 8 and not rows_red & rows_blue
    assert np.array_equal(img, np.full((120, 200, 3), 128, np.uint8))  # input untouched


def test_marker_has_a_dark_outline_a_bright_core_and_an_open_centre():
    """Issue 24.9: the "+" no longer covers a small object at the point: its centre is open
    and the whole marker spans a few percent of the image."""
    for bg in (0, 255):
        img = np.full((300, 400, 3), bg, np.uint8)
        out = draw_marker(img, (200, 150))
        row = out[150, 150:251].astype(int).sum(1)
        assert (row == 0).any() and (row == 3 * 255).any()  # black outline, white core
        assert out[148:153, 198:203].tolist() == img[148:153, 198:203].tolist()  # open centre
        changed = np.abs(out.astype(int) - img).sum(-1) > 0
        ys, xs = np.nonzero(changed)
        # (the old filled "+" spanned 29 px with a 7-px thick stroke here)
        assert 8 <= xs.max() - xs.min() <= 24 and 8 <= ys.max() - ys.min() <= 24
        assert changed.sum() < 200
