"""The HTML report without a browser: bad results directories, atomic writes, the files it
writes and where their maps land (browser tests: test_report_browser.py)."""
import base64
import glob
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from report_utils import (
    ablation_record,
    cam_record,
    detr_record,
    featmap_record,
    write_image,
    write_results,
)

from mmattnvis.cli import main as cli
from mmattnvis.report import MARKER, build_report, colormap_lut
from mmattnvis.report import builder as report_builder
from mmattnvis.structures import ImageGeometry, Map2D, ResultRecord
from mmattnvis.utils.errors import UserInputError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _decode(data_url: str) -> np.ndarray:
    head, b64 = data_url.split(',', 1)
    assert head in ('data:image/png;base64', 'data:image/jpeg;base64')
    return cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_UNCHANGED)


def _load_js(path: str, prefix: str) -> object:
    text = open(path, encoding='utf-8').read().strip()
    assert text.startswith(prefix) and text.endswith(';')
    return json.loads(text[len(prefix):-1].rstrip(')'))


@pytest.fixture
def results(tmp_path):
    recs = [featmap_record(write_image(str(tmp_path / 'a.jpg'), 240, 320, 1), 1),
            detr_record(write_image(str(tmp_path / 'b.jpg'), 200, 300, 2), 2),
            cam_record(write_image(str(tmp_path / 'c.jpg'), 240, 320, 3), 3, rows=True),
            ablation_record(write_image(str(tmp_path / 'd.jpg'), 200, 300, 4), 4)]
    return write_results(str(tmp_path / 'results'), recs, 'featmap'), recs


def _one_error_line(capfd) -> str:
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith('error: ')
    return err[0]


@pytest.mark.parametrize('case', ['missing', 'empty', 'no_records', 'version', 'bad_record'])
def test_bad_results_dir_is_one_line_error(case, tmp_path, capfd):
    d = tmp_path / 'res'
    if case != 'missing':
        d.mkdir()
    if case == 'no_records':
        (d / 'index.json').write_text(json.dumps({'version': 1, 'task': 'cam', 'records': []}))
    elif case == 'version':
        (d / 'index.json').write_text(json.dumps({'version': 99, 'task': 'cam', 'records': ['x']}))
    elif case == 'bad_record':
        (d / 'index.json').write_text(json.dumps({'version': 1, 'task': 'cam', 'records': ['x']}))
        (d / 'records').mkdir()
        (d / 'records' / 'x.json').write_text('{"version": 7}')
    rc = cli.main(['report', str(d), '-o', str(tmp_path / 'out')])
    line = _one_error_line(capfd)
    assert rc == 2
    assert {'missing': 'does not exist', 'empty': 'index.json', 'no_records': 'no records',
            'version': 'version 99', 'bad_record': 'version 7'}[case] in line
    assert not osp.exists(tmp_path / 'out')
    assert [p for p in os.listdir(tmp_path) if p.startswith('.')] == []


def test_cli_writes_report_into_results_dir_by_default(results, capfd):
    results_dir, recs = results
    assert cli.main(['report', results_dir, '--quiet']) == 0
    out = capfd.readouterr().out
    index_html = osp.join(results_dir, 'report', 'index.html')
    assert f'report: {osp.abspath(index_html)}' in out
    assert osp.isfile(osp.join(results_dir, 'report', MARKER))


def test_report_files(results, tmp_path):
    results_dir, recs = results
    path = build_report(results_dir, str(tmp_path / 'rep'))
    out = osp.dirname(path)
    index = _load_js(osp.join(out, 'data', 'index.js'), 'window.MMATTNVIS_INDEX = ')
    assert [e['name'] for e in index['images']] == ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg']
    assert index['lut'] == colormap_lut('jet') and len(index['lut']) == 256
    assert sorted(index['classes']) == sorted({d.class_name for r in recs for d in r.detections})
    for i, (entry, rec) in enumerate(zip(index['images'], recs)):
        assert entry['maps'] == len(rec.maps)
        assert [d[1] for d in entry['dets']] == [round(d.score, 4) for d in rec.detections]
        thumb = cv2.imread(osp.join(out, entry['thumb']))
        assert max(thumb.shape[:2]) == min(320, max(rec.geometry.ori_shape))  # never upscaled
        detail = _load_js(osp.join(out, 'data', entry['id'] + '.js'),
                          f'MMATTNVIS_RECORD("{entry["id"]}",')
        assert [m['name'] for m in detail['maps']] == list(rec.maps)
        assert detail['pixels'] == list(rec.geometry.ori_shape)
        for m in detail['maps']:  # aligned with the image: its aspect, 2 px per map cell
            stored = _decode(m['data'])
            assert list(stored.shape) == m['stored']
            oh, ow = rec.geometry.ori_shape
            assert abs(stored.shape[0] / stored.shape[1] - oh / ow) < 0.02
            assert stored.shape[0] <= oh and stored.shape[1] <= ow
    # the DETR record: a layer x head grid per detection and the quantised encoder matrix
    detr = _load_js(osp.join(out, 'data', 'r00001.js'), 'MMATTNVIS_RECORD("r00001",')
    grids = [g for g in detr['groups'] if g['type'] == 'grid']
    assert len(grids) == 2
    assert grids[0]['rows'] == ['0', '1', '2', 'all']
    assert grids[0]['cols'] == ['0', '1', '2', '3', 'fused']
    assert grids[0]['cells'][3][:4] == [None] * 4
    assert detr['encoder']['grid'] == [7, 11]
    q = np.frombuffer(base64.b64decode(detr['encoder']['q']), np.uint8).reshape(77, 77)
    assert np.array_equal(q, recs[1].arrays['encoder_attention'])
    # faithfulness rows link to the map they were measured on; the random baseline has none
    rows = [r for r in index['faithfulness']]
    assert len(rows) == len(recs[2].info['rows'])
    for r in rows:
        v = r['values']
        if v['method'] == 'random':
            assert r['map'] is None
        else:
            m = recs[2].maps[r['map']]
            assert (m.meta['method'], m.meta['detection']) == (v['method'], v['detection'])
    assert [s['name'] for s in index['ablation']] == ['all heads', 'layer 5 head 2 off']
    assert [s['detections'] for s in index['ablation']] == [3, 1]
    html = open(path, encoding='utf-8').read()
    assert 'http://' not in html and 'https://' not in html  # nothing from the network


def test_map_is_aligned_through_the_geometry(tmp_path):
    """A hot feature cell lands where the geometry puts it in the original image: letterbox
    padding (top/bottom) is cropped, not stretched."""
    img = write_image(str(tmp_path / 'x.jpg'), 100, 200, 0)
    geom = ImageGeometry((100, 200), (200, 200), (0.0, 50.0, 200.0, 150.0))
    fmap = np.zeros((20, 20), np.float32)
    fmap[12, 4] = 1.0  # input pixels x 40..50, y 120..130 -> image x 40..50, y 70..80
    rec = ResultRecord(img, geom, 'featmap', maps={'m': Map2D(fmap, 'm', {'kind': 'featmap'})})
    out = osp.dirname(build_report([rec], str(tmp_path / 'rep')))
    detail = _load_js(osp.join(out, 'data', 'r00000.js'), 'MMATTNVIS_RECORD("r00000",')
    stored = _decode(detail['maps'][0]['data'])
    assert stored.shape == (20, 40)  # 2 px per cell: 10 x 20 cells over the image
    y, x = np.unravel_index(np.argmax(stored), stored.shape)
    assert (y, x) in {(14, 8), (14, 9), (15, 8), (15, 9)}  # image y 70..80, x 40..50 at 1/5
    assert stored.max() == 255 and stored[:10].max() == 0


def test_records_api_and_missing_image(tmp_path):
    rec = featmap_record(str(tmp_path / 'gone.jpg'), 0)
    path = build_report([rec], str(tmp_path / 'rep'), index={'task': 'featmap'}, title='T')
    out = osp.dirname(path)
    detail = _load_js(osp.join(out, 'data', 'r00000.js'), 'MMATTNVIS_RECORD("r00000",')
    assert detail['note'] == 'image not found'
    assert cv2.imread(osp.join(out, 'images', 'r00000.jpg')).shape[:2] == (240, 320)
    assert '<title>T</title>' in open(path, encoding='utf-8').read()
    with pytest.raises(UserInputError, match='no result records'):
        build_report([], str(tmp_path / 'rep2'))


def test_failure_leaves_previous_report_and_no_temporary_folder(results, tmp_path, monkeypatch):
    results_dir, _ = results
    out = tmp_path / 'rep'
    build_report(results_dir, str(out))
    before = sorted(p for p in glob.glob(str(out / '**'), recursive=True))
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError('disk on fire')
        return real(*args, **kwargs)

    real = report_builder.map_layer
    monkeypatch.setattr(report_builder, 'map_layer', failing)
    with pytest.raises(RuntimeError, match='disk on fire'):
        build_report(results_dir, str(out))
    assert sorted(glob.glob(str(out / '**'), recursive=True)) == before
    assert sorted(os.listdir(tmp_path)) == ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg', 'rep', 'results']
    # a new report replaces the old one only when complete
    monkeypatch.setattr(report_builder, 'map_layer', real)
    (out / 'stale.txt').write_text('old')
    build_report(results_dir, str(out))
    assert not (out / 'stale.txt').exists() and (out / 'index.html').exists()
    assert sorted(os.listdir(tmp_path)) == ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg', 'rep', 'results']


def test_refuses_to_replace_a_folder_that_is_not_a_report(results, tmp_path, capfd):
    results_dir, _ = results
    other = tmp_path / 'mine'
    other.mkdir()
    (other / 'thesis.tex').write_text('precious')
    assert cli.main(['report', results_dir, '-o', str(other)]) == 2
    assert 'is not an mmattnvis report' in _one_error_line(capfd)
    assert os.listdir(other) == ['thesis.tex']
    file_out = tmp_path / 'file'
    file_out.write_text('x')
    assert cli.main(['report', results_dir, '-o', str(file_out)]) == 2
    assert 'not a folder' in _one_error_line(capfd)


@pytest.mark.parametrize('argv, message', [
    (['--alpha', '2'], '--alpha must be within [0, 1]'),
    (['--colormap', 'nope'], "unknown colormap 'nope'"),
    (['--jpeg-quality', '0'], 'jpeg_quality'),
])
def test_bad_options_are_one_line_errors(argv, message, results, tmp_path, capfd):
    assert cli.main(['report', results[0], '-o', str(tmp_path / 'o')] + argv) == 2
    assert message in _one_error_line(capfd)


def test_templates_and_scripts_are_package_data():
    """setup.py ships what the builder reads (an installed wheel has no checkout)."""
    ns = {}
    src = open(osp.join(ROOT, 'setup.py'), encoding='utf-8').read()
    start = src.index('REPORT_DATA = ')
    exec(src[start:src.index('\n', start)], ns)
    pkg = osp.join(ROOT, 'mmattnvis')
    shipped = {osp.relpath(p, pkg) for pattern in ns['REPORT_DATA']
               for p in glob.glob(osp.join(pkg, pattern))}
    needed = {osp.join('report', 'templates', 'index.html')}
    needed |= {osp.join('report', 'static', f) for f in report_builder.STATIC_FILES}
    assert needed <= shipped


def test_labels_of_boxes_on_one_object_do_not_overlap():
    """Sigmoid DETRs give one query several classes: same box, labels placed apart."""
    from mmattnvis.structures import Detection
    box = np.array([50, 40, 90, 80], np.float32)
    dets = [Detection(0, i, 1, i, 0.9 - 0.1 * i, box, name)
            for i, name in enumerate(['square', 'circle', 'star'])]
    font = report_builder.label_font((244, 303))
    rects = report_builder.label_rects(dets, (244, 303), font)
    for i, (a, d) in enumerate(zip(rects, dets)):
        text = f'{d.class_name} {d.score:.2f}'
        assert a[2] - a[0] >= 0.6 * font * len(text) and a[3] - a[1] >= font
        assert 0 <= a[0] and a[2] <= 303 and 0 <= a[1] and a[3] <= 244
        for b in rects[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_relative_image_paths_found_next_to_the_results(tmp_path, monkeypatch):
    """A hook's records with relative image paths and epochs: images are looked up from the
    results folder's parent, the epoch goes on the card."""
    write_image(str(tmp_path / 'im.jpg'), 240, 320, 5)
    rec = featmap_record('im.jpg', 5)
    rec.info['epoch'] = 3
    results = write_results(str(tmp_path / 'results'), [rec], 'featmap')
    monkeypatch.chdir(osp.dirname(ROOT))  # somewhere else
    out = osp.dirname(build_report(results, str(tmp_path / 'rep')))
    detail = _load_js(osp.join(out, 'data', 'r00000.js'), 'MMATTNVIS_RECORD("r00000",')
    assert detail['note'] is None
    img = cv2.imread(osp.join(out, 'images', 'r00000.jpg'))
    assert img.std() > 20  # the picture, not the grey placeholder
    index = _load_js(osp.join(out, 'data', 'index.js'), 'window.MMATTNVIS_INDEX = ')
    assert index['images'][0]['when'] == 'epoch 3'


def test_a_map_that_cannot_be_drawn_is_left_out_with_a_note(tmp_path):
    rec = featmap_record(write_image(str(tmp_path / 'a.jpg'), 240, 320, 1), 1)
    maps = list(rec.maps.items())
    rec.maps = dict([maps[0], ('bad', Map2D(np.zeros(5, np.float32), 'bad', {'kind': 'featmap'})),
                     *maps[1:]])
    out = osp.dirname(build_report([rec], str(tmp_path / 'rep')))
    detail = _load_js(osp.join(out, 'data', 'r00000.js'), 'MMATTNVIS_RECORD("r00000",')
    assert [m['name'] for m in detail['maps']] == [n for n, _ in maps]
    assert detail['left_out'] == ["map 'bad' left out (map of shape (5,) is not 2-D)"]
    # the groups index the maps the page has
    assert sorted(k for g in detail['groups'] for k in g['items']) == [0, 1, 2]


def test_default_title_and_image_names():
    """Titles name the run, never the temporary folder of --report; images are named by their
    path under the folder holding all of the run's images."""
    from mmattnvis.report.builder import default_title, display_names
    from mmattnvis.structures import ImageGeometry, ResultRecord
    assert default_title('attention', {'tool': 'attn_vis', 'mode': 'deformable',
                                       'config': 'mmattnvis::shapes/dino_slim_shapes.py'},
                         '.mmattnvis-results-abc') == \
        'mmattnvis report · attention (deformable) · dino_slim_shapes'
    assert default_title('featmap', {'hook': 'FeatMapVisHook', 'loop': 'val',
                                      'config': 'my_cfg'}, 'val') == \
        'mmattnvis report · featmap · my_cfg · FeatMapVisHook val'
    assert default_title('cam', {}, '.mmattnvis-results-x1') == 'mmattnvis report · cam'
    assert default_title('cam', {}, 'my_results') == 'mmattnvis report · cam · my_results'
    geom = ImageGeometry.identity((8, 8))
    recs = [ResultRecord(p, geom, 'cam') for p in ('/d/x/images/a.jpg', '/d/x/images/sub/b.jpg',
                                                    '')]
    assert display_names(recs, ['s0', 's1', 's2']) == ['a.jpg', 'sub/b.jpg', 's2']
