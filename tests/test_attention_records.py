"""AttentionRun's records: the quantised encoder self-attention the report reads, and --report."""
import os
import os.path as osp

import cv2
import numpy as np

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
    grid, attn = _last_encoder_attention(model)  # the reference, straight from the capture
    assert rec.info['encoder_grid'] == grid
    scale = attn.max(1)
    np.testing.assert_allclose(rec.arrays['encoder_attention_scale'], scale, rtol=1e-6)
    assert rec.arrays['encoder_attention'].dtype == np.uint8
    np.testing.assert_allclose(rec.arrays['encoder_attention'], attn / scale[:, None] * 255,
                               atol=0.5 + 1e-4)  # rounded to the nearest level
    n = int(np.prod(rec.info['encoder_grid']))
    assert rec.arrays['encoder_attention'].shape == (n, n)
    assert (rec.arrays['encoder_attention'].max(1) == 255).all()  # each row scaled to its max
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


def _last_encoder_attention(model):
    """The last encoder layer's self-attention of IMAGE, heads averaged, and its token grid."""
    import torch

    from mmattnvis.apis import build_test_pipeline, prepare_batch
    from mmattnvis.capture import AttentionCapture
    data = prepare_batch([cv2.imread(IMAGE)], build_test_pipeline(model.cfg), [IMAGE])
    with AttentionCapture(model, parts=('encoder', )) as cap, torch.no_grad():
        model.test_step(data)
    layer = max(cap.record.layers('encoder'))
    attn = cap.record.dense[('encoder', layer)][0].float().mean(0).cpu().numpy()
    return [int(v) for v in cap.record.key_shape], attn
