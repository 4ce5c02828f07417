"""The record contents the page needs besides maps, and the JSON scripts that carry them.

Browsers refuse ``fetch()`` of local files from a ``file://`` page, so every data file is a
script that hands its JSON to a global callback (:func:`js_call`). Encoder self-attention stays
quantised (uint8 per row + float32 row scale, base64) and is dequantised in the page when a
point is clicked.
"""
import base64
import json
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..structures import ResultRecord, infer_stride
from ..structures.record import jsonable
from ..utils.errors import UserInputError


def _b64(a: np.ndarray) -> str:
    """The raw bytes of ``a`` (C order) as base64 text."""
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode('ascii')


def encoder_data(record: ResultRecord) -> Optional[Dict[str, Any]]:
    """The record's quantised encoder self-attention for the page, or None when it has none.

    Raises:
        UserInputError: The arrays do not match the record's ``encoder_grid``.
    """
    q = record.arrays.get('encoder_attention')
    s = record.arrays.get('encoder_attention_scale')
    grid = record.info.get('encoder_grid')
    if q is None or s is None or grid is None:
        return None
    h, w = (int(v) for v in grid)
    q = np.asarray(q)
    n = h * w
    if q.dtype != np.uint8 or q.shape != (n, n) or np.shape(s) != (n, ):
        raise UserInputError(
            f'{record.image_path or "a record"}: encoder_attention must be uint8 [{n}, {n}] '
            f'with encoder_attention_scale [{n}] for encoder_grid {[h, w]}, got '
            f'{q.dtype} {list(q.shape)} and {list(np.shape(s))}')
    # the grid covers [0, w * s) x [0, h * s) of the input for a strided grid
    stride = infer_stride(record.geometry.input_shape, (h, w))
    return {'grid': [h, w], 'stride': stride, 'q': _b64(q),
            's': _b64(np.asarray(s, dtype='<f4'))}


def point_rows(points: Any) -> List[List[Optional[float]]]:
    """Sampling points ``(K, >=4)`` as page rows ``x, y, weight, level`` (None where not
    finite)."""
    a = np.asarray(points, dtype=np.float64)
    a = a.reshape(-1, a.shape[-1] if a.ndim else 1)[:, :4]
    a = np.where(np.isfinite(a), a, np.nan)
    return [[None if np.isnan(v) else round(float(v), 3) for v in p] for p in a]


def sampling_data(record: ResultRecord) -> Optional[Dict[str, Any]]:
    """Deformable sampling points per detection rank (``arrays['sampling_points/<rank>']``)."""
    pts = {name.split('/', 1)[1]: point_rows(a) for name, a in record.arrays.items()
           if name.startswith('sampling_points/')}
    return pts or None


def ablation_summary(records: Sequence[ResultRecord]) -> List[Dict[str, Any]]:
    """Per head-ablation setting: images, detections kept and their mean score."""
    summary: Dict[str, Dict[str, Any]] = {}
    for r in records:
        for s in r.info.get('settings') or []:
            name = str(s.get('name'))
            e = summary.setdefault(name, {'name': name, 'heads_off': s.get('heads_off'),
                                          'images': 0, 'detections': 0, 'score_sum': 0.0})
            e['images'] += 1
            e['detections'] += len(s.get('detections') or [])
            e['score_sum'] += sum(float(d.get('score', 0)) for d in s.get('detections') or [])
    out = []
    for e in summary.values():
        n = e.pop('detections')
        total = e.pop('score_sum')
        e.update(detections=n, mean_score=round(total / n, 4) if n else None)
        out.append(e)
    return out


def find_map(record: ResultRecord, row: Dict[str, Any]) -> Optional[str]:
    """Name of the map a faithfulness row was measured on (same detection, method, layer)."""
    for name, m in record.maps.items():
        meta = m.meta
        if meta.get('method') != row.get('method'):
            continue
        if 'detection' in row and meta.get('detection') != row.get('detection'):
            continue
        if row.get('layer') is not None and meta.get('layer') != row.get('layer'):
            continue
        return name
    return None


def js_call(callback: str, *args: Any) -> str:
    """A script line that calls ``callback`` with ``args`` as JSON."""
    body = ', '.join(json.dumps(a, separators=(',', ':'), allow_nan=False) for a in args)
    return f'{callback}({body});\n'


def clean(obj: Any) -> Any:
    """JSON-able copy of ``obj`` (see :func:`mmattnvis.structures.record.jsonable`)."""
    return jsonable(obj)
