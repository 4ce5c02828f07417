"""Small deterministic result records of every task, built with the structures API (report tests
and benchmarks/bench_report.py)."""
import os.path as osp
from typing import List, Optional, Sequence

import cv2
import numpy as np

from mmattnvis.sinks.records import RecordSink
from mmattnvis.structures import Detection, ImageGeometry, Map2D, ResultRecord

CLASSES = ('circle', 'square', 'triangle')


def synthetic_image(h: int, w: int, seed: int) -> np.ndarray:
    """A BGR picture with texture (JPEG sizes closer to photos than flat colours): a smooth
    gradient, some filled shapes and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 200, yy / h * 200, (xx + yy) / (h + w) * 255], -1)
    for _ in range(4):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        cv2.circle(img, (x, y), int(rng.integers(8, max(9, min(h, w) // 5))), c, -1)
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image(path: str, h: int, w: int, seed: int) -> str:
    """Write :func:`synthetic_image` to ``path``; returns ``path``."""
    cv2.imwrite(path, synthetic_image(h, w, seed))
    return path


def _dets(rng: np.random.Generator, h: int, w: int, n: int, query_base: int = 0
          ) -> List[Detection]:
    out = []
    for i in range(n):
        x0, y0 = rng.uniform(0, w * 0.6), rng.uniform(0, h * 0.6)
        bw, bh = rng.uniform(w * 0.1, w * 0.35), rng.uniform(h * 0.1, h * 0.35)
        label = int(rng.integers(0, len(CLASSES)))
        out.append(Detection(0, i, query_base + 7 * i, label, round(float(rng.uniform(0.3, 1)), 3),
                             np.array([x0, y0, x0 + bw, y0 + bh], np.float32), CLASSES[label]))
    return out


def featmap_record(path: str, seed: int, layers: Sequence[str] = ('stage2', 'stage3', 'stage4'),
                   shape=(240, 320), n_dets: int = 2) -> ResultRecord:
    """A letterboxed image (content box centred vertically) with one map per layer."""
    h, w = shape
    rng = np.random.default_rng(seed)
    side = max(h, w)
    pad = (side - h * side / w) / 2 if w >= h else 0.0
    geom = ImageGeometry((h, w), (side, side), (0.0, pad, float(side), side - pad))
    rec = ResultRecord(path, geom, 'featmap', _dets(rng, h, w, n_dets),
                       info={'layers': list(layers)})
    for k, layer in enumerate(layers):
        g = side // (8 * 2**k)
        rec.add_map(f'{layer}/mean', Map2D(rng.random((g, g)).astype(np.float32), f'{layer} mean',
                                           {'kind': 'featmap', 'layer': layer, 'method': 'mean'}))
    return rec


def detr_record(path: str, seed: int, shape=(200, 300), grid=(7, 11), layers: int = 3,
                heads: int = 4, n_dets: int = 2) -> ResultRecord:
    """A DETR image: resized and padded right/bottom, dense encoder self-attention over ``grid``
    (quantised uint8 per row), a layer x head grid of cross-attention per detection."""
    h, w = shape
    rng = np.random.default_rng(seed)
    gh, gw = grid
    in_h, in_w = gh * 32 - 4, gw * 32 - 2  # a stride-32 grid reaches past the input
    s = min(in_h / h, in_w / w)
    geom = ImageGeometry.from_resize_pad((h, w), (round(h * s), round(w * s)), (in_h, in_w))
    dets = _dets(rng, h, w, n_dets, query_base=3)
    rec = ResultRecord(path, geom, 'attention', dets, info={'encoder_grid': [gh, gw]})
    n = gh * gw
    attn = rng.random((n, n)) ** 4
    attn /= attn.sum(1, keepdims=True)
    scale = attn.max(1).astype(np.float32)
    rec.arrays['encoder_attention'] = np.round(attn / scale[:, None] * 255).astype(np.uint8)
    rec.arrays['encoder_attention_scale'] = scale
    for d in dets:
        for layer in list(range(layers)) + ['all']:
            for head in list(range(heads)) + ['fused']:
                if layer == 'all' and head != 'fused':
                    continue
                rec.add_map(f'q{d.query}/L{layer}/H{head}', Map2D(
                    rng.random((gh, gw)).astype(np.float32), f'layer {layer} head {head}',
                    {'kind': 'cross_attention', 'layer': layer, 'head': head, 'query': d.query,
                     'detection': d.rank}))
    return rec


def deformable_record(path: str, seed: int, shape=(200, 300), n_dets: int = 2,
                      points: int = 16) -> ResultRecord:
    """A deformable DETR image: sampling points per detection, one fused map each."""
    h, w = shape
    rng = np.random.default_rng(seed)
    geom = ImageGeometry.from_resize_pad((h, w), (h * 2, w * 2), (h * 2 + 8, w * 2 + 16))
    dets = _dets(rng, h, w, n_dets)
    rec = ResultRecord(path, geom, 'attention', dets)
    for d in dets:
        pts = np.stack([rng.uniform(0, w, points), rng.uniform(0, h, points),
                        rng.random(points), rng.integers(0, 4, points)], 1).astype(np.float32)
        rec.arrays[f'sampling_points/{d.rank}'] = pts
        rec.add_map(f'q{d.query}/fused', Map2D(rng.random((25, 38)).astype(np.float32),
                                               'fused', {'kind': 'cross_attention', 'layer': 'all',
                                                         'head': 'fused', 'query': d.query,
                                                         'detection': d.rank}))
    return rec


def cam_record(path: str, seed: int, methods=('gradcam', 'eigencam'), layer: str = 'neck.out',
               shape=(240, 320), rows: bool = False) -> ResultRecord:
    """Explainer maps per detection and method; with ``rows`` a faithfulness record."""
    h, w = shape
    rng = np.random.default_rng(seed)
    task = 'faithfulness' if rows else 'cam'
    rec = ResultRecord(path, ImageGeometry.identity((h, w)), task, _dets(rng, h, w, 2))
    table = []
    for d in rec.detections:
        for m in methods:
            rec.add_map(f'{m}/{d.rank}', Map2D(rng.random((h // 8, w // 8)).astype(np.float32),
                                               f'{m} det {d.rank}',
                                               {'kind': 'explainer', 'method': m, 'layer': layer,
                                                'detection': d.rank}))
            table.append({'image': osp.basename(path), 'detection': d.rank, 'label': d.label,
                          'score': d.score, 'method': m, 'layer': layer,
                          'pointing_game': float(rng.integers(0, 2)),
                          'deletion_auc': round(float(rng.random()), 4),
                          'insertion_auc': round(float(rng.random()), 4)})
        table.append({'image': osp.basename(path), 'detection': d.rank, 'label': d.label,
                      'score': d.score, 'method': 'random', 'layer': None,
                      'pointing_game': 0.0, 'deletion_auc': None, 'insertion_auc': None})
    if rows:
        rec.info['rows'] = table
    return rec


def ablation_record(path: str, seed: int, shape=(200, 300)) -> ResultRecord:
    """Detections per head setting (no maps)."""
    h, w = shape
    rng = np.random.default_rng(seed)
    rec = ResultRecord(path, ImageGeometry.identity((h, w)), 'ablation', _dets(rng, h, w, 3))
    rec.info['settings'] = [
        {'name': 'all heads', 'heads_off': [], 'detections': [d.to_dict() for d in rec.detections]},
        {'name': 'layer 5 head 2 off', 'heads_off': [[5, 2]],
         'detections': [d.to_dict() for d in rec.detections[:1]]},
    ]
    return rec


def write_results(results_dir: str, records: Sequence[ResultRecord], task: str,
                  info: Optional[dict] = None) -> str:
    """Save ``records`` as a results directory (as the tools' ``--save-results`` do)."""
    sink = RecordSink(results_dir, task, info or {'tool': 'synthetic'})
    for i, r in enumerate(records):
        sink.write(r, osp.splitext(osp.basename(r.image_path))[0] or f'image_{i}')
    sink.close()
    return results_dir


# ----- records from a real forward pass (torch and MMDet imported on use) ----------------------
def real_attention_record(model, image_path: str, max_dets: int = 3,
                          score_thr: float = 0.0) -> ResultRecord:
    """One image through a DETR-family ``model`` by the tools' own path (:class:`AttentionRun`,
    as ``attn_vis --report``): per detection, every decoder layer's cross-attention per head
    (dense models) or the last layer's sampling points (deformable models), and the last
    encoder layer's self-attention quantised as the results format stores it."""
    from mmattnvis.apis.attention import AttentionRun
    from mmattnvis.apis.attention_runner import AttentionOptions
    from mmattnvis.capture.attention import attention_kind, find_attention_modules
    modules = find_attention_modules(model)
    deformable = any(attention_kind(m) == 'deformable'
                     for (p, _), (_, m) in modules.items() if p == 'decoder_cross')
    n_layers = len([1 for p, _ in modules if p == 'decoder_cross'])
    options = AttentionOptions(mode='deformable' if deformable else 'decoder',
                               layers=None if deformable else list(range(n_layers)),
                               head_fusion='mean' if deformable else 'none',
                               score_thr=score_thr, max_queries=max_dets)
    run = AttentionRun(model, options, keep_encoder=True)
    return run.run_images([cv2.imread(image_path)], [image_path])[0]
