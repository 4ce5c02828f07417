"""AttentionRun's records: the quantised encoder self-attention the report reads, and --report."""
import os
import os.path as osp

import cv2
import numpy as np
from report_utils import real_attention_record

from mmattnvis.apis.attention import AttentionRun
from mmattnvis.apis.attention_runner import AttentionOptions
from mmattnvis.apis.run_sinks import RunSinks

from detr_utils import small_detr

IMAGE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'demo', 'images',
                 'shapes_1.jpg')


def test_attention_run_keeps_the_encoder_attention_and_builds_a_report(tmp_path):
    model = small_detr('detr')
    options = AttentionOptions(mode='decoder', layers=[0, 1], score_thr=0.0, max_queries=3)
    rec = AttentionRun(model, options, keep_encoder=True).run_images([cv2.imread(IMAGE)],
                                                                     [IMAGE])[0]
    ref = real_attention_record(model, IMAGE)  # the report tests' reference quantisation
    assert rec.info['encoder_grid'] == ref.info['encoder_grid']
    for name in ('encoder_attention', 'encoder_attention_scale'):
        assert rec.arrays[name].dtype == ref.arrays[name].dtype
        np.testing.assert_allclose(rec.arrays[name], ref.arrays[name], atol=1)
    n = int(np.prod(rec.info['encoder_grid']))
    assert rec.arrays['encoder_attention'].shape == (n, n)
    assert (rec.arrays['encoder_attention'].max(1) == 255).all()  # each row scaled to its max
    assert [d.query for d in rec.detections] == [d.query for d in ref.detections]
    # a column per detection, a map per decoder layer (heads fused)
    assert [c['kind'] for c in rec.info['columns']] == ['detection'] * 3
    assert sorted({(m.meta['column'], m.meta['layer']) for m in rec.maps.values()}) == [
        (c, layer) for c in range(3) for layer in (0, 1)]
    # without keep_encoder the records stay small
    plain = AttentionRun(model, options).run_images([cv2.imread(IMAGE)], [IMAGE])[0]
    assert 'encoder_attention' not in plain.arrays
    for key in plain.maps:
        np.testing.assert_array_equal(plain.maps[key].data, rec.maps[key].data)
    # --report without --save-results: records in a temporary folder, removed once built
    sinks = RunSinks('attention', None, str(tmp_path / 'rep'))
    sinks.add(rec, 'shapes_1')
    index_html = sinks.close()
    assert index_html == str(tmp_path / 'rep' / 'index.html') and osp.isfile(index_html)
    assert sorted(os.listdir(tmp_path)) == ['rep']
    assert 'encoder' in (tmp_path / 'rep' / 'data' / 'r00000.js').read_text()
