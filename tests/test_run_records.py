"""The records the explainer and ablation tools save hold what their figures and tables show."""
import csv
import glob
import os.path as osp

import numpy as np
import pytest

from mmattnvis.datasets import generate_shapes_dataset, shapes_metainfo
from mmattnvis.sinks import load_results
from mmattnvis.utils.package_data import shipped_model


@pytest.fixture(scope='module')
def shapes_images(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes_dataset(str(root), num_images=2, seed=3)
    return sorted(glob.glob(str(root / 'images' / '*')))


def test_cam_records_hold_one_map_per_method_and_detection(shapes_images, tmp_path):
    from mmattnvis.cli.cam_vis import main
    cfg, weights = shipped_model('yolov5_n_shapes')
    assert main([shapes_images[0], cfg, weights, '--method', 'gradcam', 'eigencam', '--topk',
                 '2', '--device', 'cpu', '--out-dir', str(tmp_path / 'png'), '--save-results',
                 str(tmp_path / 'res')]) == 0
    index, (rec, ) = load_results(str(tmp_path / 'res'))
    assert index['task'] == rec.task == 'cam'
    kept = [c['detection'] for c in rec.info['columns'] if c['kind'] == 'detection']
    classes = shapes_metainfo()['classes']
    by_rank = {d.rank: d for d in rec.detections}
    for c in rec.info['columns'][1:]:  # headers name the class, as the figure shows them
        assert c['header'] == f"{classes[by_rank[c['detection']].label]} " \
            f"{by_rank[c['detection']].score:.2f}"
    assert 1 <= len(kept) <= 2
    assert list(rec.maps) == ['image/gradcam', 'image/eigencam'] + [
        f'd{r}/{m}' for r in kept for m in ('gradcam', 'eigencam')]
    h, w = rec.geometry.ori_shape
    for name, m in rec.maps.items():
        assert m.meta['aligned'] and m.data.shape == (h, w)
        assert m.meta['method'] == name.split('/')[1] and m.meta['layer'] == 'neck'
    # every kept detection is a saved detection, all above the threshold
    ranks = {d.rank for d in rec.detections}
    assert set(kept) <= ranks and all(d.score > 0.3 for d in rec.detections)
    assert osp.isfile(tmp_path / 'png' / (osp.splitext(osp.basename(shapes_images[0]))[0]
                                          + '.png'))


def test_ablation_records_equal_the_csv_table(shapes_images, tmp_path):
    from mmattnvis.cli.head_ablation import main
    cfg, weights = shipped_model('dino_slim_shapes')
    assert main([shapes_images[1], cfg, weights, '--device', 'cpu', '--out-dir',
                 str(tmp_path / 'out'), '--save-results', str(tmp_path / 'res')]) == 0
    _, (rec, ) = load_results(str(tmp_path / 'res'))
    stem = osp.splitext(osp.basename(shapes_images[1]))[0]
    with open(tmp_path / 'out' / f'{stem}_ablation.csv') as f:
        table = list(csv.DictReader(f))
    settings = rec.info['settings']
    assert [s['name'] for s in settings] == [r['variant'] for r in table]
    assert len(settings) == 1 + 2 * rec.info['n_heads']
    for s, row in zip(settings, table):
        assert s['row']['detections'] == int(row['detections']) == len(s['detections'])
        assert s['row']['lost'] == int(row['lost'])
        assert s['row']['mean_score_change'] == pytest.approx(float(row['mean_score_change']))
    base = settings[0]
    assert base['heads_off'] == [] and len(base['detections']) == len(rec.detections)
    np.testing.assert_allclose([d['bbox'] for d in base['detections']],
                               [d.bbox for d in rec.detections], atol=1e-4)
    assert all(len(p['heads']) == 1 for p in settings[-1]['heads_off'])
