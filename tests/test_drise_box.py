"""D-RISE with masks over each detection's own box (``--drise-region box``): the box through the
letterbox, masks that never touch the rest of the image, a map that is 0 outside the box and
finds the part of the box a constructed detector needs, and the CLI run as a user types it."""
import os.path as osp

import numpy as np
import pytest
import torch
from box_maps import BOX, far_from_box, left_half_detector

from mmattnvis.methods.drise import DRISE, Predictions, box_region
from mmattnvis.render.geometry import ImageGeometry
from mmattnvis.structures.detection import Detection
from mmattnvis.utils.errors import UserInputError

from conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py')
WEIGHTS = osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth')
LETTERBOX = dict(ori_shape=(100, 200), img_shape=(64, 128), scale_factor=(0.64, 0.64),
                 pad_param=np.array([32., 32., 0., 0.]), batch_input_shape=(128, 128))


def test_box_region_through_the_letterbox():
    geom = ImageGeometry.from_metainfo(LETTERBOX)
    content = (32, 96, 0, 128)
    # 0.64 px per original pixel, 32 rows of padding above the content
    assert box_region(geom, (50, 25, 100, 75), content) == (48, 80, 32, 64)
    # a box smaller than the grid grows to min_side, inside the content
    assert box_region(geom, (0, 0, 2, 2), content, min_side=8) == (32, 40, 0, 8)
    assert box_region(geom, (198, 98, 200, 100), content, min_side=8) == (88, 96, 120, 128)
    # a box reaching past the image is clipped to the content (never into the padding)
    assert box_region(geom, (-20, -20, 300, 300), content) == content


def _maps(region, n, seen):
    image = torch.ones(1, 3, 64, 64)
    geom = ImageGeometry.identity((64, 64))
    det = Detection(0, 0, 0, 1, 1.0, np.array(BOX, np.float32))
    drise = DRISE(n, 4, 0.5, batch_size=8, seed=0, progress=False, region=region)
    targets = Predictions(torch.tensor([BOX]), torch.ones(1), torch.tensor([1]))
    predict = left_half_detector(seen)
    fill = torch.zeros(1, 3, 1, 1)
    if region == 'box':
        raw, meta = drise._box_saliency(predict, image, geom, (0, 64, 0, 64), [det], targets,
                                        fill)
        return raw[0].numpy(), meta
    raw, meta = drise._saliency(predict, image, (0, 64, 0, 64), targets, fill)
    return raw[0].numpy(), meta


def test_box_masks_touch_only_the_box_and_find_the_part_it_needs():
    seen: list = []
    sal, meta = _maps('box', 128, seen)
    assert meta['box_masks'] == [128] and meta['num_masks'] == 128
    batches = torch.cat(seen)
    assert batches.shape[0] == 128
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[16:48, 16:48] = False
    assert bool((batches[:, :, outside] == 1).all())  # the rest of the image as it is
    assert float(batches[:, :, 16:48, 16:48].std()) > 0.1  # the box is masked
    assert np.all(sal[outside.numpy()] == 0) and sal.max() == pytest.approx(1.0)
    left, right = sal[16:48, 16:32].mean(), sal[16:48, 32:48].mean()
    assert left > 0.5 and left - right > 0.25  # measured 0.62 / 0.26


def test_box_masks_with_auto_stop_per_box_and_record_n():
    """``--drise-masks auto --drise-region box``: each box's run stops on its own, its N is
    recorded per box, and the map still finds the half of the box the score reads."""
    image = torch.ones(1, 3, 64, 64)
    det = Detection(0, 0, 0, 1, 1.0, np.array(BOX, np.float32))
    drise = DRISE('auto', 4, 0.5, batch_size=8, seed=0, progress=False, region='box',
                  max_masks=400, tol=0.1)
    targets = Predictions(torch.tensor([BOX]), torch.ones(1), torch.tensor([1]))
    raw, meta = drise._box_saliency(left_half_detector([]), image,
                                    ImageGeometry.identity((64, 64)), (0, 64, 0, 64), [det],
                                    targets, torch.zeros(1, 3, 1, 1))
    assert meta['box_masks'] == [meta['num_masks']] and meta['num_masks'] <= 400
    assert meta['converged'] is True and len(meta['target_changes']) == 1
    sal = raw[0].numpy()
    assert sal[16:48, 16:32].mean() - sal[16:48, 32:48].mean() > 0.25


def test_bad_region():
    import argparse

    from mmattnvis.methods.drise import REGIONS
    from mmattnvis.utils.cli import add_drise_args
    with pytest.raises(UserInputError, match='--drise-region must be one of image, box'):
        DRISE(8, 4, region='boxes')
    parser = argparse.ArgumentParser()
    add_drise_args(parser)  # the flag's choices (kept out of the method's import) are REGIONS
    action = next(a for a in parser._actions if a.dest == 'drise_region')
    assert tuple(action.choices) == REGIONS and action.default == REGIONS[0]


def _far_from_box(record, m):
    """Pixels more than 2 px from the box of map ``m``'s detection, and the box."""
    box = next(d.bbox for d in record.detections if d.rank == m.meta['rank'])
    return far_from_box(m.data.shape, box), tuple(box)


def test_cam_vis_drise_region_box(tmp_path, capfd):
    """``mmattnvis cam IMG CONFIG CKPT --method drise --drise-region box`` as a user types it:
    every detection's map is 0 outside its box (a 2 px margin for the resampling to the
    original image), peaks inside it, and the record says the region and the N per box; the
    default region is the whole image, and a bad region is a one-line error with exit 2."""
    import cv2

    from mmattnvis.cli import cam_vis
    from mmattnvis.datasets.shapes import make_shapes_image
    from mmattnvis.sinks import load_results
    img = make_shapes_image(np.random.default_rng(3))[0]
    path = str(tmp_path / 'shapes.png')
    cv2.imwrite(path, img)
    base = [path, CONFIG, WEIGHTS, '--method', 'drise', '--drise-masks', '16', '--drise-grid',
            '4', '--topk', '2', '--device', 'cpu']
    assert cam_vis.main(base + ['--drise-region', 'box', '--out-dir', str(tmp_path / 'o'),
                                '--save-results', str(tmp_path / 'box')]) == 0
    assert cam_vis.main(base + ['--out-dir', str(tmp_path / 'o2'), '--save-results',
                                str(tmp_path / 'image')]) == 0
    capfd.readouterr()
    (record, ), (plain, ) = load_results(str(tmp_path / 'box'))[1], \
        load_results(str(tmp_path / 'image'))[1]
    per_det = [m for m in record.maps.values() if m.meta.get('rank') is not None]
    assert len(per_det) == 2
    for m in per_det:
        assert m.meta['region'] == 'box' and m.meta['box_masks'] == [16, 16]
        far, (x0, y0, x1, y1) = _far_from_box(record, m)
        assert far.any() and float(m.data[far].max()) == 0.0
        peak = np.unravel_index(int(np.argmax(m.data)), m.data.shape)
        assert x0 - 1 <= peak[1] <= x1 + 1 and y0 - 1 <= peak[0] <= y1 + 1
    plain_maps = [m for m in plain.maps.values() if m.meta.get('rank') is not None]
    assert len(plain_maps) == 2
    for m in plain_maps:  # the whole image's masks give every pixel a value
        assert m.meta['region'] == 'image' and 'box_masks' not in m.meta
        assert float(m.data[_far_from_box(plain, m)[0]].max()) > 0.05
    with pytest.raises(SystemExit) as exc:
        cam_vis.main(base + ['--drise-region', 'boxes', '--out-dir', str(tmp_path / 'b')])
    err = capfd.readouterr().err
    assert exc.value.code == 2 and err.startswith('error:') and '--drise-region' in err
    assert not (tmp_path / 'b').exists()
    assert len(err.strip().splitlines()) == 1
