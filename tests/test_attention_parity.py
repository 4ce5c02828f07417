"""Parity with the reference code: encoder self-attention direction (DETR notebook), the
stride-exact point -> token rule and map alignment, Chefer et al.'s rollout baseline, and the
encoder rollout mode (API and CLI)."""
import os
import os.path as osp
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch

from mmattnvis.apis import build_test_pipeline, prepare_batch
from mmattnvis.apis.attention_runner import AttentionOptions, run_attention
from mmattnvis.capture import AttentionCapture
from mmattnvis.capture.tokens import TokenAttentionCapture
from mmattnvis.cli import attn_vis  # noqa: E402
from mmattnvis.methods import CheferRelevance, EncoderSelfAttention
from mmattnvis.methods.attention import point_to_token, token_box
from mmattnvis.methods.relevance import chefer_rollout
from mmattnvis.methods.rollout import rollout_from_capture
from mmattnvis.render.geometry import ImageGeometry, align_to_image, infer_stride
from mmattnvis.utils.errors import UserInputError

from conftest import ROOT, hook_count, square_image
from detr_utils import DETR_FAMILY, small_detr

_MODEL = {}


def detr():
    if 'detr' not in _MODEL:
        torch.manual_seed(0)
        _MODEL['detr'] = small_detr('detr', scale=200)
    return _MODEL['detr']


def one_image(model, h=150, w=200):
    img = np.random.default_rng(5).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return img, prepare_batch([img], build_test_pipeline(model.cfg), ['x.png'])


# -- point -> token, alignment -------------------------------------------------------------

def test_stride_rule_differs_from_proportional_rule_and_aligns_exactly():
    # MMDet's DETR test input for a 480x640 image: 800x1066, no padding to 32; ResNet's
    # stride-32 grid has ceil(1066 / 32) = 34 columns, covering 1088 px.
    geom = ImageGeometry.from_resize_pad((480, 640), (800, 1066), (800, 1066))
    grid = (25, 34)
    assert infer_stride(geom.input_shape, grid) == 32
    x = 570.0  # original pixels -> input x = 570 * 1066 / 640 = 949.4
    x_in, _ = geom.image_to_input((x, 10.0))
    assert 32 * 29 <= x_in < 32 * 30
    old_col = int(np.floor(x_in * grid[1] / 1066))
    row, col = point_to_token((x, 10.0), geom, grid)
    assert (row, col) == (0, 29) and old_col == 30  # the two rules disagree here
    assert point_to_token((x, 10.0), geom, grid, stride=32) == (0, 29)
    # the token's box goes back through the geometry: input pixels [928, 960)
    x0, _, x1, _ = token_box((0, 29), geom, grid)
    assert np.allclose([x0, x1], [928 * 640 / 1066, 960 * 640 / 1066])

    # Aligned on the input grid: feature cell j is nearest for input pixels [32j, 32j + 32).
    ident = ImageGeometry.identity((800, 1066))
    aff = ident.image_to_feature_affine(grid, stride=32)
    px = np.arange(1066)
    cell = np.round(aff[0, 0] * px + aff[0, 2]).astype(int)
    for j in (0, 17, 29, 32):
        assert np.array_equal(np.flatnonzero(cell == j), np.arange(32 * j, min(32 * j + 32,
                                                                                  1066)))
    one_hot = np.zeros(grid, np.float32)
    one_hot[:, 29] = 1
    aligned = align_to_image(one_hot, ident, stride='auto')
    assert aligned.shape == (800, 1066)
    centre = aligned[400]
    # centred on input x = 944, the middle of [928, 960) (OpenCV samples at 1/32-pixel
    # resolution of the source grid, here 1 input pixel)
    assert 32 * 29 <= int(np.argmax(centre)) < 32 * 30 and centre.max() > 0.95
    com = np.average(np.arange(1066), weights=centre)
    assert abs(com - (32 * 29 + 15.5)) <= 1.0
    # the stretched (old) placement puts the peak elsewhere
    stretched = align_to_image(one_hot, ident)[400]  # 34 cells over 1066 px: centre 924.5
    assert not 32 * 29 <= int(np.argmax(stretched)) < 32 * 30
    assert abs(np.average(np.arange(1066), weights=stretched) - 924) < 2


def test_non_strided_grid_keeps_the_proportional_rule():
    geom = ImageGeometry.identity((100, 100))
    assert infer_stride((100, 100), (7, 7)) == 16  # ceil(100 / 16) == 7
    assert infer_stride((100, 100), (3, 7)) is None  # no integer s fits both sides
    assert point_to_token((50.0, 99.0), geom, (3, 7)) == (2, 3)


# -- encoder self-attention direction ------------------------------------------------------

def test_encoder_direction_to_and_from_equal_hand_computation():
    model = detr()
    img, data = one_image(model)
    with AttentionCapture(model, parts=['encoder']) as cap, torch.no_grad():
        samples = model.test_step(data)
    rec = cap.record
    geom = ImageGeometry.from_metainfo(samples[0].metainfo)
    h, w = rec.key_shape
    in_h, in_w = geom.input_shape
    # stride 32 by the ResNet's ceil rounding; this input is not a multiple of 32
    assert (h, w) == (-(-in_h // 32), -(-in_w // 32)) and in_w % 32
    xy = (131.0, 77.0)
    sx = geom.content_box[2] / 200
    col, row = int(xy[0] * sx // 32), int(xy[1] * sx // 32)
    token = row * w + col
    attn = rec.dense[('encoder', 1)][0].double()  # (heads, queries, keys)
    to = EncoderSelfAttention(fusion='mean').compute((rec, 0, xy, geom, 1))[0]
    frm = EncoderSelfAttention(fusion='mean', direction='from').compute((rec, 0, xy, geom, 1))[0]
    assert to.meta['token'] == (row, col) and to.meta['direction'] == 'to'
    assert np.allclose(to.data, attn.mean(0)[:, token].reshape(h, w).numpy(), atol=1e-7)
    assert np.allclose(frm.data, attn.mean(0)[token, :].reshape(h, w).numpy(), atol=1e-7)
    assert not np.allclose(to.data, frm.data)
    assert np.isclose(frm.data.sum(), 1.0, atol=1e-5)  # a softmax row
    per_head = EncoderSelfAttention(heads=[2], fusion=None, direction='to').compute(
        (rec, 0, xy, geom, 1))
    assert per_head[0].label == 'L1 h2 TO'
    assert np.allclose(per_head[0].data, attn[2, :, token].reshape(h, w).numpy(), atol=1e-7)
    with pytest.raises(UserInputError, match='unknown direction'):
        EncoderSelfAttention(direction='up')


# -- Chefer's rollout baseline -------------------------------------------------------------

def _hand_rollout(layers):
    """Head mean, + identity, rows / row sums, later layers on the left (explicit loops)."""
    n = layers[0].shape[-1]
    joint = None
    for a in layers:
        m = a.mean(0) + np.eye(n)
        m = m / m.sum(1)[:, None]
        joint = m if joint is None else m @ joint
    return joint


def test_chefer_rollout_equals_hand_computation():
    rng = np.random.default_rng(3)

    def soft(*shape):
        x = np.exp(rng.normal(size=shape))
        return x / x.sum(-1, keepdims=True)

    enc = [soft(2, 5, 5) for _ in range(3)]
    dec = [soft(2, 4, 4) for _ in range(2)]
    cross = soft(2, 4, 5)
    r_ii, r_qq = _hand_rollout(enc), _hand_rollout(dec)
    want = np.zeros((4, 5))
    for q in range(4):  # row q of R_qq^T A R_ii = sum_k R_qq[k, q] (A R_ii)[k]
        for k in range(4):
            want[q] += r_qq[k, q] * (cross.mean(0)[k] @ r_ii)
    got = chefer_rollout([torch.from_numpy(a) for a in enc], [torch.from_numpy(a) for a in dec],
                         torch.from_numpy(cross))
    assert torch.allclose(got, torch.from_numpy(want), atol=1e-12)
    # not the former baseline (raw cross-attention @ encoder rollout)
    assert not np.allclose(got.numpy(), cross.mean(0) @ r_ii, atol=1e-3)


def test_relevance_rollout_map_is_chefers_rollout():
    model = detr()
    _, data = one_image(model)
    result = CheferRelevance(max_detections=2).explain(model, data, -1)
    rec = result.record
    b = 0
    keys = sorted(rec.dense)
    enc = [rec.dense[k][b].detach().double() for k in keys if k[0] == 'encoder']
    dec = [rec.dense[k][b].detach().double() for k in keys if k[0] == 'decoder_self']
    cross = [rec.dense[k][b].detach().double() for k in keys if k[0] == 'decoder_cross']
    assert len(enc) == len(dec) == len(cross) == 2
    want = chefer_rollout(enc, dec, cross[-1])
    h, w = rec.key_shape
    for det, maps in zip(result.detections[b], result.maps[b]):
        assert maps['rollout'][0].label == 'rollout (Chefer)'
        assert np.allclose(maps['rollout'][0].data, want[det.query].reshape(h, w).numpy(),
                           atol=1e-6)
    assert hook_count(model) == 0


# -- rollout mode: API == rollout_from_capture, CLI ----------------------------------------

def _encoder_attention_names(model):
    return [f'encoder.layers.{i}.self_attn.attn' for i in range(len(model.encoder.layers))]


def test_rollout_mode_equals_rollout_from_capture():
    model = detr()
    _, data = one_image(model)
    opts = AttentionOptions(mode='rollout', head_fusion='max', discard_ratio=0.5,
                            points=[(131.0, 77.0)], direction='from')
    samples, _, columns = run_attention(model, data, opts)
    with TokenAttentionCapture(model, _encoder_attention_names(model)) as cap, torch.no_grad():
        model.test_step(data)
    want = rollout_from_capture(cap, head_fusion='max', discard_ratio=0.5, keep_first=False)
    (point, rows), = columns[0]
    geom = ImageGeometry.from_metainfo(samples[0].metainfo)
    grid = rows[0].data.shape
    row, col = point_to_token(point, geom, grid)
    assert rows[0].meta['token'] == (row, col)
    assert np.allclose(rows[0].data, want[row * grid[1] + col].reshape(grid).numpy(), atol=1e-6)

    # no points: the mean over tokens, then each detection's centre token (column: 'to')
    opts = AttentionOptions(mode='rollout', score_thr=-1, max_queries=2)
    samples, dets, columns = run_attention(model, data, opts)
    with TokenAttentionCapture(model, _encoder_attention_names(model)) as cap, torch.no_grad():
        model.test_step(data)
    want = rollout_from_capture(cap, keep_first=False)
    assert columns[0][0][0] is None and len(columns[0]) == 3
    assert np.allclose(columns[0][0][1][0].data, want.mean(0).reshape(grid).numpy(), atol=1e-6)
    for det, rows in columns[0][1:]:
        cx, cy = (det.bbox[0] + det.bbox[2]) / 2, (det.bbox[1] + det.bbox[3]) / 2
        r, c = point_to_token((cx, cy), geom, grid)
        assert np.allclose(rows[0].data, want[:, r * grid[1] + c].reshape(grid).numpy(),
                           atol=1e-6)
    assert hook_count(model) == 0


def test_gradient_rollout_mode_equals_rollout_from_capture():
    model = detr()
    _, data = one_image(model)
    opts = AttentionOptions(mode='rollout', gradient=True, score_thr=-1, max_queries=2)
    samples, dets, columns = run_attention(model, data, opts)
    assert len(columns[0]) == 2
    for det, rows in columns[0]:
        with TokenAttentionCapture(model, _encoder_attention_names(model), keep_grad=True) as tc, \
                AttentionCapture(model, parts=(), keep_grad=True) as ac:
            processed = model.data_preprocessor(data, False)
            model.predict(processed['inputs'], processed['data_samples'])
            ac.record.head_outputs[0][0, det.query, det.label].backward()
        want = rollout_from_capture(tc, gradient=True, keep_first=False)
        grid = rows[0].data.shape
        assert rows[1].label.startswith('grad rollout')
        assert np.allclose(rows[1].data, want.mean(0).reshape(grid).numpy(), atol=1e-6)
        model.zero_grad()
    assert not np.allclose(columns[0][0][1][1].data, columns[0][1][1][1].data)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert hook_count(model) == 0


@pytest.mark.parametrize('extra,cols,rows', [
    ([], 3, 2),
    (['--points', '40,30', '150,100', '--head-fusion', 'min', '--direction', 'from'], 2, 2),
    (['--gradient', '--discard-ratio', '0.3'], 2, 3),
])
def test_rollout_cli(extra, cols, rows, tmp_path, capfd):
    img = tmp_path / 'sq.png'
    cv2.imwrite(str(img), square_image(120, 180, (40, 30, 100, 90)))
    opts = ['model.backbone.depth=18', 'model.neck.in_channels=[512]',
            'model.encoder.num_layers=2', 'model.decoder.num_layers=2', 'model.num_queries=20',
            'model.test_cfg.max_per_img=20', 'test_dataloader.dataset.pipeline.1.scale=(160,160)']
    rc = attn_vis.main([str(img), DETR_FAMILY['detr'], 'none', '--mode', 'rollout',
                        '--score-thr', '0', '--max-queries', '2', '--cell-width', '120',
                        '--out-dir', str(tmp_path / 'o')] + extra + ['--cfg-options'] + opts)
    out, err = capfd.readouterr()
    assert rc == 0, err
    fig = cv2.imread(str(tmp_path / 'o' / 'sq.png'))
    assert fig.shape[1] == cols * 120 + (cols - 1) * 3
    cell_h = round(120 * 120 / 180)
    top = fig.shape[0] - rows * cell_h - (rows - 1) * 3  # the title strip's height
    assert 10 < top < 60
    for c in range(cols):  # each map cell differs from the plain image cell above it
        x = c * 123
        head = fig[top:top + cell_h, x:x + 120].astype(float)
        cell = fig[top + cell_h + 3:top + 2 * cell_h + 3, x:x + 120].astype(float)
        assert cell.std() > 5 and np.abs(cell - head).mean() > 10


def test_rollout_refuses_deformable_encoders_and_bad_values(tmp_path, capfd):
    img = tmp_path / 'sq.png'
    cv2.imwrite(str(img), square_image(120, 180, (40, 30, 100, 90)))
    small = ['--cfg-options', 'model.backbone.depth=18', 'model.encoder.num_layers=1',
             'model.decoder.num_layers=1']
    cases = [
        ([DETR_FAMILY['dino'], 'none', '--mode', 'rollout'], 'deformable encoder attention'),
        ([DETR_FAMILY['detr'], 'none', '--mode', 'rollout', '--discard-ratio', '1'],
         '--discard-ratio must be in [0, 1)'),
        ([DETR_FAMILY['detr'], 'none', '--mode', 'rollout', '--head-fusion', 'none'],
         'fuses the heads'),
        ([DETR_FAMILY['detr'], 'none', '--mode', 'decoder', '--gradient'],
         'apply to --mode rollout'),
        ([DETR_FAMILY['dino'], 'none', '--mode', 'encoder', '--points', '5,5', '--direction',
          'to'], 'use --direction from'),
    ]
    for args, message in cases:
        neck = '[128,256,512]' if 'dino' in args[0] else '[512]'
        rc = attn_vis.main([str(img)] + args + ['--out-dir', str(tmp_path / 'o')] + small +
                           [f'model.neck.in_channels={neck}'])
        out, err = capfd.readouterr()
        assert rc == 2, err
        lines = [line for line in err.splitlines() if line.startswith('error:')]
        assert len(lines) == 1 and message in lines[0], err


# -- no library warnings reach the terminal ------------------------------------------------

def test_relevance_and_gradient_rollout_raise_no_warnings():
    model = detr()
    _, data = one_image(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        run_attention(model, data, AttentionOptions(mode='relevance', score_thr=-1,
                                                    max_queries=2))
        run_attention(model, data, AttentionOptions(mode='rollout', gradient=True,
                                                    score_thr=-1, max_queries=2))
    assert not [str(w.message) for w in caught]


def test_attn_vis_on_the_shipped_dino_prints_no_warning(tmp_path):
    weights = osp.join(ROOT, 'models', 'shapes', 'dino_slim_shapes', 'weights.pth')
    if not osp.isfile(weights):
        pytest.skip('models/shapes/dino_slim_shapes/weights.pth is absent')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'attn_vis.py'),
           osp.join(ROOT, 'demo', 'images', 'shapes_1.jpg'),
           osp.join(ROOT, 'configs', 'shapes', 'dino_slim_shapes.py'), weights,
           '--mode', 'deformable', '--max-queries', '2', '--out-dir', str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}  # as a user runs it
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if 'Warning' in line], proc.stderr
    assert osp.isfile(tmp_path / 'shapes_1.png')
