"""Result records: JSON + compressed-array round trip, results directories, one-line errors."""
import json
import os

import numpy as np
import pytest

from mmattnvis.apis.run_sinks import RunSinks
from mmattnvis.sinks import RecordSink, load_record, load_results, read_index
from mmattnvis.structures import (
    RECORD_VERSION,
    Detection,
    ImageGeometry,
    IncompatibleResults,
    Map2D,
    ResultRecord,
)
from mmattnvis.utils.errors import UserInputError


def _record() -> ResultRecord:
    rng = np.random.default_rng(0)
    geom = ImageGeometry((48, 64), (64, 64), (0.0, 8.0, 64.0, 56.0))
    dets = [Detection(0, 3, 17, 2, 0.875, np.array([1.5, 2.0, 30.25, 40.0], np.float32), 'cat'),
            Detection(0, 5, 5, 0, 0.5, np.array([0, 0, 10, 10], np.float32))]
    rec = ResultRecord('imgs/a.jpg', geom, 'attention', dets)
    rec.add_map('c0/0', Map2D(rng.random((8, 8)).astype(np.float32), 'L5 mean',
                              {'kind': 'cross_attention', 'layer': 5, 'head': 'fused',
                               'query': 17, 'detection': 3, 'column': 0,
                               'reference': (3.5, 4.25), 'token_box': np.array([1, 2, 3, 4])}))
    rec.add_map('c1/0', Map2D(rng.random((4, 6, 3)), '', {'kind': 'sampling_points',
                                                          'points': rng.random((5, 5))}))
    rec.arrays['encoder_attention'] = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    rec.arrays['encoder_attention_scale'] = rng.random(64).astype(np.float32)
    rec.info.update(columns=[{'kind': 'detection', 'detection': 3}], score=np.float32(0.25),
                    grid=(8, 8), nan=float('nan'))
    return rec


def _assert_same(a: ResultRecord, b: ResultRecord) -> None:
    assert (a.image_path, a.task, a.geometry) == (b.image_path, b.task, b.geometry)
    assert [d.to_dict() for d in a.detections] == [d.to_dict() for d in b.detections]
    assert list(a.maps) == list(b.maps)
    for name in a.maps:
        ma, mb = a.maps[name], b.maps[name]
        assert ma.label == mb.label
        assert mb.data.dtype == np.asarray(ma.data).dtype
        np.testing.assert_array_equal(ma.data, mb.data)
    assert b.maps['c0/0'].meta['reference'] == [3.5, 4.25]
    assert b.maps['c0/0'].meta['token_box'] == [1, 2, 3, 4]
    np.testing.assert_allclose(b.maps['c1/0'].meta['points'], a.maps['c1/0'].meta['points'])
    for name in a.arrays:
        assert b.arrays[name].dtype == a.arrays[name].dtype
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    assert b.info['grid'] == [8, 8] and b.info['nan'] is None
    assert b.info['score'] == pytest.approx(0.25)


def test_record_round_trips_through_json_and_npz(tmp_path):
    rec = _record()
    text, npz = rec.to_files()
    doc = json.loads(text)
    assert doc['version'] == RECORD_VERSION and 'NaN' not in text
    assert doc['detections'][0]['bbox'] == [1.5, 2.0, 30.25, 40.0]
    _assert_same(rec, ResultRecord.from_files(text, npz))
    # and through the files a sink writes
    sink = RecordSink(str(tmp_path / 'res'), 'attention', {'tool': 'test'})
    sink.write(rec, 'a')
    sink.write(rec, 'a')  # a repeated stem is kept apart
    sink.close()
    index, records = load_results(str(tmp_path / 'res'))
    assert index['records'] == ['a', 'a_1'] and index['info'] == {'tool': 'test'}
    assert len(records) == 2
    _assert_same(rec, records[1])
    _assert_same(rec, load_record(str(tmp_path / 'res' / 'records' / 'a.json')))


def test_geometry_maps_both_ways():
    g = ImageGeometry((48, 64), (64, 64), (0.0, 8.0, 64.0, 56.0))
    for xy in ((0.0, 0.0), (10.5, 20.25), (64.0, 48.0)):
        assert g.input_to_image(g.image_to_input(xy)) == pytest.approx(xy)
    assert g.image_to_input((0, 0)) == (0.0, 8.0)
    m = g.image_to_feature_affine((8, 8))  # image pixel (col, row) -> feature pixel
    centre = m @ np.array([31.5, 23.5, 1.0])  # image centre -> feature centre
    assert centre == pytest.approx([3.5, 3.5])


def test_duplicate_map_name_is_refused():
    rec = _record()
    with pytest.raises(KeyError):
        rec.add_map('c0/0', Map2D(np.zeros((2, 2))))


def test_incompatible_records_and_directories(tmp_path):
    text, npz = _record().to_files()
    doc = json.loads(text)
    doc['version'] = RECORD_VERSION + 1
    with pytest.raises(IncompatibleResults, match='version'):
        ResultRecord.from_files(json.dumps(doc), npz)
    with pytest.raises(IncompatibleResults, match='not a result record'):
        ResultRecord.from_files('{"a": 1', npz)
    with pytest.raises(UserInputError, match='does not exist'):
        read_index(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserInputError, match='no index.json'):
        read_index(str(tmp_path / 'empty'))
    (tmp_path / 'old').mkdir()
    (tmp_path / 'old' / 'index.json').write_text(json.dumps({'version': 0, 'records': ['x']}))
    with pytest.raises(UserInputError, match='version 0'):
        read_index(str(tmp_path / 'old'))
    (tmp_path / 'none').mkdir()
    (tmp_path / 'none' / 'index.json').write_text(
        json.dumps({'version': RECORD_VERSION, 'records': []}))
    with pytest.raises(UserInputError, match='no records'):
        read_index(str(tmp_path / 'none'))
    for err in ('does not exist', 'no index.json'):
        assert '\n' not in err


def test_run_sinks_without_records_write_no_index(tmp_path):
    sinks = RunSinks('cam', str(tmp_path / 'res'))
    assert sinks.close() is None
    assert not os.path.exists(tmp_path / 'res' / 'index.json')


def test_report_without_results_leaves_nothing_when_the_run_fails(tmp_path):
    import gc
    sinks = RunSinks('cam', None, str(tmp_path / 'rep'))
    sinks.add(_record(), 'a')
    assert len(os.listdir(tmp_path)) == 1  # the hidden temporary results folder
    del sinks  # the run raised before close(): its sinks are dropped
    gc.collect()
    assert os.listdir(tmp_path) == []
