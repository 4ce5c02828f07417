"""``--method occlusion``: each detection's box cut into cells, each cell removed (black) and shown
alone (the rest of the box blurred). The masks, a constructed detector whose cells' values are
known exactly, the shipped YOLOv5-n and DINO (model untouched), and the CLI as a user types it."""
import os.path as osp

import numpy as np
import pytest
import torch
from box_maps import BOX, far_from_box, left_half_detector

from mmattnvis.methods.drise import Predictions
from mmattnvis.methods.occlusion import BoxOcclusion, blurred, cell_edges, occlusion_masks
from mmattnvis.utils.errors import UserInputError

from conftest import ROOT, hook_count

CONFIG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
WEIGHTS = osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth')


def test_masks_remove_each_cell_then_show_each_cell_alone():
    masks = occlusion_masks((10, 7), 3)
    n = 9
    assert masks.shape == (2 * n + 2, 10, 7)
    assert bool((masks[0] == 1).all()) and bool((masks[n + 1] == 0).all())
    removed, alone = masks[1:n + 1], masks[n + 2:]
    assert torch.equal(removed, 1 - alone)  # the same cells, both ways
    assert torch.equal(alone.sum(0), torch.ones(10, 7))  # the cells tile the box, no overlap
    sizes = sorted(int(a.sum()) for a in alone)
    assert sizes[0] >= 6 and sizes[-1] <= 12  # near-equal cells (10 x 7 in 3 x 3)
    assert cell_edges(0, 10, 3) == [0, 3, 7, 10]


@pytest.mark.parametrize('batch', [1, 5, 64])
def test_cell_values_are_the_mean_of_removed_and_alone(batch):
    """Each of the 8 left cells (4 x 4 grid) carries 1/8 of the score: removing it loses 1/8,
    showing it alone (the rest of the box at the blur, here 0) gains 1/8; the right cells 0.
    The rest of the image is never touched, and the batch size does not change the values."""
    seen: list = []
    image = torch.ones(1, 3, 64, 64)
    target = Predictions(torch.tensor([BOX]), torch.ones(1), torch.tensor([1]))
    values = BoxOcclusion(4, batch_size=batch).cell_values(
        left_half_detector(seen), image, (16, 48, 16, 48), target,
        torch.zeros(1, 3, 1, 1), torch.zeros(1, 3, 32, 32))
    expected = torch.zeros(4, 4)
    expected[:, :2] = 1 / 8
    torch.testing.assert_close(values, expected)
    batches = torch.cat(seen)
    assert batches.shape[0] == 2 * 16 + 2
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[16:48, 16:48] = False
    assert bool((batches[:, :, outside] == 1).all())


def test_blur_keeps_the_padding_and_smooths_the_content():
    image = torch.zeros(1, 3, 40, 40)
    image[0, :, 10:30, 10:20] = 1.0  # content rows 10:30, cols 0:40; a bright block in it
    image[0, :, :10] = 5.0  # padding, above
    out = blurred(image, (10, 30, 0, 40))
    assert torch.equal(out[:, :, :10], image[:, :, :10])  # the padding as it is
    c = out[0, 0, 10:30]
    assert 0.05 < float(c[:, 21].mean()) < 0.95 and float(c[:, 8].mean()) > 0.05  # spread
    assert float(c.min()) >= 0 and float(c[:, 35].max()) < 0.01  # sigma 2 px: not far
    assert abs(float(c.mean()) - 0.25) < 0.03  # the blur keeps the mean (a quarter is bright)


def test_bad_grid():
    with pytest.raises(UserInputError, match='--occlusion-grid must be >= 1'):
        BoxOcclusion(0)


@pytest.fixture(scope='module')
def shapes_yolo():
    from mmattnvis.apis import init_model
    return init_model(CONFIG, WEIGHTS, device='cpu')


def _detected(model, seed=11, topk=2):
    from mmattnvis.apis import build_test_pipeline, prepare_batch
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.methods.cam import detect
    img, _ = make_shapes_image(np.random.default_rng(seed))
    data = prepare_batch([img], build_test_pipeline(model.cfg), ['s.png'])
    return img, data, detect(model, data, 0.3, topk)


def _inside(m, det):
    """The map is 0 more than 2 px from the box (the resampling to the original image) and
    peaks inside the box."""
    x0, y0, x1, y1 = det.bbox
    far = far_from_box(m.data.shape, det.bbox)
    r, c = np.unravel_index(int(np.argmax(m.data)), m.data.shape)
    return (far.any() and float(m.data[far].max()) == 0.0
            and x0 - 1 <= c <= x1 + 1 and y0 - 1 <= r <= y1 + 1)


def test_shapes_yolo_maps_in_the_box_and_the_model_untouched(shapes_yolo):
    img, data, detected = _detected(shapes_yolo)
    with torch.no_grad():
        before = shapes_yolo.test_step(data)[0].pred_instances
    hooks, training = hook_count(shapes_yolo), shapes_yolo.training
    res = BoxOcclusion(3).explain(shapes_yolo, detected=detected)
    dets = detected.detections[0]
    assert len(dets) == 2 and len(res.maps[0]) == 2
    for m, d in zip(res.maps[0], dets):
        assert m.data.shape == img.shape[:2] and m.meta['aligned']
        assert m.meta['grid'] == 3 and m.meta['forwards'] == 20 and m.meta['region'] == 'box'
        assert m.data.min() == 0.0 and m.data.max() == pytest.approx(1.0, abs=1e-3)
        assert _inside(m, d)
    assert np.abs(res.maps[0][0].data - res.maps[0][1].data).max() > 0.5
    with torch.no_grad():
        after = shapes_yolo.test_step(data)[0].pred_instances
    assert torch.equal(before.bboxes, after.bboxes) and torch.equal(before.scores, after.scores)
    assert hook_count(shapes_yolo) == hooks and shapes_yolo.training == training
    assert all(p.grad is None for p in shapes_yolo.parameters())


def test_shipped_dino():
    """A DETR (no gradient path needed): the top detection's map is in its box."""
    from mmattnvis.apis import init_model
    model = init_model(osp.join(ROOT, 'configs', 'shapes', 'dino_slim_shapes.py'),
                       osp.join(ROOT, 'models', 'shapes', 'dino_slim_shapes', 'weights.pth'),
                       device='cpu')
    _, _, detected = _detected(model, topk=1)
    res = BoxOcclusion(2).explain(model, detected=detected)
    (m, ), (d, ) = res.maps[0], detected.detections[0]
    assert _inside(m, d) and m.meta['forwards'] == 10


def test_cam_vis_occlusion_as_typed(tmp_path, capfd):
    """``mmattnvis cam IMG CONFIG CKPT --method occlusion --occlusion-grid 3`` as a user types
    it: every detection's map is 0 outside its box and peaks inside it, the record says the grid
    and the passes; a bad grid is a one-line error with exit 2 and nothing written."""
    import cv2

    from mmattnvis.cli.main import main
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.sinks import load_results
    path = str(tmp_path / 'shapes.png')
    cv2.imwrite(path, make_shapes_image(np.random.default_rng(3))[0])
    base = ['cam', path, CONFIG, WEIGHTS, '--method', 'occlusion', '--topk', '2', '--device',
            'cpu']
    assert main(base + ['--occlusion-grid', '3', '--out-dir', str(tmp_path / 'o'),
                        '--save-results', str(tmp_path / 'r')]) == 0
    capfd.readouterr()
    assert (tmp_path / 'o' / 'shapes.png').is_file()
    (record, ) = load_results(str(tmp_path / 'r'))[1]
    per_det = [m for m in record.maps.values() if m.meta.get('rank') is not None]
    assert len(per_det) == 2
    for m in per_det:
        assert m.meta['method'] == 'occlusion' and m.meta['grid'] == 3
        assert m.meta['forwards'] == 20
        assert _inside(m, next(d for d in record.detections if d.rank == m.meta['rank']))
    rc = main(base + ['--occlusion-grid', '0', '--out-dir', str(tmp_path / 'b')])
    err = capfd.readouterr().err
    assert rc == 2 and err.startswith('error:') and '--occlusion-grid must be >= 1' in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'b').exists()


def test_eval_faithfulness_occlusion_row_with_in_box_curves(tmp_path, capfd):
    """``eval_faithfulness --methods occlusion --baselines box --box-curves`` as typed: the
    occlusion rows have no layer, maps that peak in the box (pointing game 1) and carry their
    mass inside it (0 outside it but at its resampled edge), and the in-box curves."""
    import csv

    from mmattnvis.cli import eval_faithfulness
    from mmattnvis.datasets import generate_shapes_dataset
    generate_shapes_dataset(str(tmp_path / 'data'), num_images=2, seed=5)
    rc = eval_faithfulness.main([str(a) for a in [
        CONFIG, WEIGHTS, '--data', tmp_path / 'data', '--methods', 'occlusion',
        '--occlusion-grid', '2', '--baselines', 'box', '--box-curves', '--steps', '3',
        '--topk', '1', '--device', 'cpu', '--out-dir', tmp_path / 'f']])
    out, err = capfd.readouterr()
    assert rc == 0, err
    with open(tmp_path / 'f' / 'faithfulness_detections.csv') as f:
        rows = list(csv.DictReader(f))
    occ = [r for r in rows if r['method'] == 'occlusion']
    assert len(occ) == 2 and {r['method'] for r in rows} == {'occlusion', 'box'}
    for r in occ:
        assert r['layer'] == '' and float(r['pointing_game']) == 1.0
        assert float(r['energy_pg']) > 0.9  # the rest: the resampling at the box's edge
        assert 0.0 <= float(r['box_deletion_auc']) <= 1.0
        assert float(r['box_oa']) == pytest.approx(
            float(r['box_insertion_auc']) - float(r['box_deletion_auc']), abs=1e-6)
