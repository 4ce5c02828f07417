"""featmap_vis output on large inputs and edge cases: capped size with boxes drawn at output
scale, a note when nothing is detected, wrapped grids, titles naming the reduction, --show
without a display."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmattnvis.cli import featmap_vis  # noqa: E402

from conftest import ROOT, square_image

YOLO_SHAPES = osp.join(ROOT, 'configs/shapes/yolov5_n_shapes.py')
YOLO_SHAPES_W = osp.join(ROOT, 'models/shapes/yolov5_n_shapes/weights.pth')


def _sample(boxes, scores):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    s = DetDataSample(metainfo=dict(ori_shape=(3000, 4000)))
    s.pred_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                    scores=torch.tensor(scores), labels=torch.zeros(
                                        len(scores), dtype=torch.long))
    return s


def test_fit_to_max_size_scales_image_and_boxes():
    from mmattnvis.apis.featmap_runner import fit_to_max_size
    img = np.zeros((3000, 4000, 3), np.uint8)
    sample = _sample([[400, 300, 800, 600]], [0.9])
    small, scaled = fit_to_max_size(img, sample, n_panels=3, cells=1, max_size=2000)
    # 3 panels -> a 2x2 grid of image-sized panels: 8000 px wide -> scale 1/4
    assert small.shape == (750, 1000, 3)
    assert scaled.pred_instances.bboxes.tolist() == [[100, 75, 200, 150]]
    assert sample.pred_instances.bboxes.tolist() == [[400, 300, 800, 600]]  # input untouched
    same, _ = fit_to_max_size(img[:100, :100], sample, 1, 1, 2000)
    assert same.shape == (100, 100, 3)


def test_large_photo_is_capped_with_readable_boxes(tmp_path, capfd):
    if not osp.isfile(YOLO_SHAPES_W):
        pytest.skip('shipped shapes model missing')
    big = square_image(3000, 4000, (1200, 900, 2400, 2100), value=230, bg=40)
    cv2.imwrite(str(tmp_path / 'big.jpg'), big)
    rc = featmap_vis.main([str(tmp_path / 'big.jpg'), YOLO_SHAPES, YOLO_SHAPES_W,
                           '--target-layers', 'neck', '--channel-reduction', 'squeeze_mean',
                           '--device', 'cpu', '--score-thr', '0.01', '--out-dir',
                           str(tmp_path / 'out')])
    assert rc == 0, capfd.readouterr().err
    out = cv2.imread(str(tmp_path / 'out' / 'big.jpg'))
    assert max(out.shape[:2]) <= 2000 + 40 and max(out.shape[:2]) > 1500
    # the first panel's box lines (DetLocalVisualizer's) are several pixels wide at this scale
    capped = featmap_vis.main([str(tmp_path / 'big.jpg'), YOLO_SHAPES, YOLO_SHAPES_W,
                               '--target-layers', 'neck', '--device', 'cpu', '--max-size', '800',
                               '--out-dir', str(tmp_path / 'out2')])
    assert capped == 0
    assert max(cv2.imread(str(tmp_path / 'out2' / 'big.jpg')).shape[:2]) <= 800 + 40


def test_no_detection_note_and_reduction_in_title():
    from mmattnvis.visualization import FeatMapVisualizer
    vis = FeatMapVisualizer(name='t_note')
    fm = {'neck.0': torch.rand(8, 10, 10)}
    img = np.full((100, 100, 3), 128, np.uint8)
    with_note = vis.draw_featmaps(fm, img, _sample(np.zeros((0, 4)), []), score_thr=0.3)
    detected = vis.draw_featmaps(fm, img, _sample([[10, 10, 50, 50]], [0.9]), score_thr=0.3)
    assert with_note.shape[0] > detected.shape[0]  # an extra strip with the note
    from mmattnvis.methods.featmap import build_reduction
    from mmattnvis.visualization.featmap_visualizer import describe
    assert describe(build_reduction('squeeze_mean')) == 'squeeze_mean'
    assert describe(build_reduction(None, 4, (2, 2))) == 'top-4 channels'


def test_grid_wraps_instead_of_a_strip():
    from mmattnvis.render.featmap import grid_shape
    assert grid_shape(4, (2, 2)) == (2, 2)
    assert grid_shape(20, (1, 3)) == (4, 5)  # does not fit: near-square, not 1 x 20
    assert grid_shape(7, None) == (3, 3)


def test_show_without_display_is_one_line(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    cv2.imwrite(str(tmp_path / 'a.png'), square_image())
    rc = featmap_vis.main([str(tmp_path / 'a.png'), YOLO_SHAPES, 'none', '--show',
                           '--device', 'cpu', '--out-dir', str(tmp_path / 'out')])
    err = capfd.readouterr().err
    assert rc == 2 and err.strip().startswith('error: --show needs a display')
    assert len(err.strip().splitlines()) == 1


def test_boxes_past_the_border_draw_without_warnings():
    import warnings

    from mmattnvis.visualization import FeatMapVisualizer
    vis = FeatMapVisualizer(name='t_bounds')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        layer = vis.draw_instances_layer((100, 100), _sample([[-20, 50, 130, 120]], [0.9]))
    assert layer is not None and layer[..., 3].any()
    assert not [w for w in caught if 'out of bounds' in str(w.message)]


def test_detection_figure_draws_boxes_at_cell_scale():
    """cam_vis / attn_vis figures of a 4000x3000 photo: the box is drawn on the 320-px cell, not
    drawn at full size and shrunk to faint 1-px lines."""
    from mmattnvis.render.geometry import ImageGeometry
    from mmattnvis.structures import Detection, Map2D
    from mmattnvis.visualization import DetectionFigure, FeatMapVisualizer
    vis = FeatMapVisualizer(name='t_cellscale')
    vis.dataset_meta = {'classes': ('thing', ), 'palette': [(255, 0, 0)]}
    fig = DetectionFigure(vis, cell_width=320)
    img = np.zeros((3000, 4000, 3), np.uint8)
    det = Detection(0, 0, 0, 0, 0.9, np.array([1000, 750, 3000, 2250], np.float32))
    heat = Map2D(np.random.default_rng(0).random((30, 40)).astype(np.float32), 'm')
    cells = fig.column(img, det, [heat], ImageGeometry.identity((3000, 4000)))
    assert all(c.shape[1] == 320 for c in cells)
    header = cells[0].astype(int)
    strong = (np.abs(header - 0).max(-1) > 60)
    # the 160x120 box outline (and its label) at a few pixels' width
    assert strong.sum() > 400
    assert cells[1].shape == cells[0].shape
