"""The record's maps as the page shows them: aligned, normalised, encoded and grouped.

Maps are aligned with the image through the record's geometry and normalised here
(:func:`map_layer`), stored as grey PNG ``data:`` URLs at two pixels per map cell (a heat map of
a 640x480 image as a full-resolution colour JPEG weighs 30-120 kB; this weighs 0.3-5 kB), and the
page draws them at full resolution: bilinear upscaling, then the colormap of
:func:`~mmattnvis.render.image.colorize` as a 256-entry table (:func:`colormap_lut`).
"""
import base64
from typing import Any, Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ..render.geometry import align_to_image
from ..render.image import colorize, normalize_to_uint8
from ..structures import Map2D, ResultRecord
from .images import class_name

# map kinds on a DETR token grid (aligned as strided grids, as the attention figures do)
TOKEN_KINDS = ('cross_attention', 'encoder_attention', 'relevance')


def _map_data(m: Map2D) -> np.ndarray:
    """``m.data`` as a 2-D float32 array; ``ValueError`` when it is not one."""
    data = np.asarray(m.data, dtype=np.float32)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim != 2 or min(data.shape) < 1:
        raise ValueError(f'map of shape {tuple(np.shape(m.data))} is not 2-D')
    return data


def map_layer(m: Map2D, record: ResultRecord, out_shape: Sequence[int]) -> np.ndarray:
    """Map ``m`` aligned with the original image (through the record's geometry, unless
    ``meta.aligned``) on an ``out_shape`` grid over the whole image, min-max normalised to
    uint8 (:func:`~mmattnvis.render.image.normalize_to_uint8`)."""
    data = np.nan_to_num(_map_data(m), nan=0.0, posinf=0.0, neginf=0.0)
    geom = None if m.meta.get('aligned') else record.geometry
    # token grids of attention maps are strided (cell j covers input pixels [s*j, s*(j+1)))
    stride = m.meta.get('stride') or ('auto' if m.meta.get('kind') in TOKEN_KINDS else None)
    aligned = align_to_image(data, geom, out_shape=tuple(out_shape[:2]), stride=stride)
    return normalize_to_uint8(aligned)


def storage_shape(m: Map2D, record: ResultRecord, full_shape: Sequence[int],
                  px_per_cell: float = 2.0) -> Tuple[int, int]:
    """Grid a map is stored on: ``px_per_cell`` pixels per map cell over the image (the page
    interpolates bilinearly up to ``full_shape``), never finer than ``full_shape``."""
    fh, fw = _map_data(m).shape
    oh, ow = record.geometry.ori_shape
    if m.meta.get('aligned'):
        cells_h, cells_w = float(fh), float(fw)
    else:
        (in_h, in_w), (x0, y0, x1, y1) = record.geometry.input_shape, record.geometry.content_box
        cells_h, cells_w = fh * (y1 - y0) / in_h, fw * (x1 - x0) / in_w
    s = min(1.0, max(px_per_cell * cells_h / oh, px_per_cell * cells_w / ow))
    return (min(int(full_shape[0]), max(1, int(np.ceil(full_shape[0] * s)))),
            min(int(full_shape[1]), max(1, int(np.ceil(full_shape[1] * s)))))


def data_url(u8: np.ndarray) -> str:
    """A grey map as a ``data:`` URL: lossless PNG, or JPEG (quality 92) for large maps when
    smaller. ``data:`` images keep the page's canvas readable (``file://`` images do not)."""
    ok, png = cv2.imencode('.png', u8, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    best, mime = png.tobytes(), 'png'
    if u8.size > 128 * 128:
        ok, jpg = cv2.imencode('.jpg', u8, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if ok and len(jpg) < len(best):
            best, mime = jpg.tobytes(), 'jpeg'
    return f'data:image/{mime};base64,' + base64.b64encode(best).decode('ascii')


def colormap_lut(colormap: str) -> List[List[int]]:
    """The 256 RGB colours of ``colormap``, as :func:`colorize` applies them."""
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 256)
    return colorize(ramp, colormap)[0].astype(int).tolist()


def map_caption(m: Map2D) -> str:
    """A tile's caption: the map's label, with its layer in front when the label lacks it (a
    feature map's ``channel: 7`` becomes ``neck.1 · channel: 7``)."""
    label = m.label or ''
    layer = m.meta.get('layer')
    if isinstance(layer, str) and layer and layer not in label:
        return f'{layer} · {label}' if label else layer
    return label


def shown_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    """The metadata the page lists: arrays (sampling points) summarised, not dumped."""
    out = dict(meta)
    pts = out.get('points')
    if pts is not None:
        out['points'] = f'{len(np.asarray(pts).reshape(-1, np.shape(pts)[-1]))} sampling points'
    return out


def facet_layer(meta: Dict[str, Any]) -> str:
    """The gallery's layer facet of a map (``'—'`` when it has no layer)."""
    layer = meta.get('layer')
    return '—' if layer is None else str(layer)


def facet_method(meta: Dict[str, Any]) -> str:
    """The gallery's method facet of a map (its method, else its kind)."""
    return str(meta.get('method') or meta.get('kind') or 'map')


def _sort_key(v: Any) -> Tuple[int, Any]:
    """Numbers first in their order, then everything else by its text."""
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))


def map_groups(record: ResultRecord) -> List[Dict[str, Any]]:
    """How the detail view lays out the record's maps (indices into ``record.maps``).

    Cross-attention maps of one query form a layer x head grid (``'fused'`` heads and layer
    ``'all'`` last); every other map goes to a list per (detection, kind).
    """
    maps = list(record.maps.values())
    ranks = {d.rank: d for d in record.detections}
    groups: Dict[Tuple, Dict[str, Any]] = {}
    for k, m in enumerate(maps):
        meta = m.meta
        det = meta.get('detection')
        det = det if isinstance(det, int) else None
        kind = str(meta.get('kind') or 'map')
        grid = (kind == 'cross_attention' and meta.get('layer') is not None
                and meta.get('head') is not None)
        key = (det, kind, 'grid' if grid else 'list', meta.get('setting'))
        if key not in groups:
            who = ''
            if det is not None:
                d = ranks.get(det)
                who = (f'detection {det}: {class_name(d)} {d.score:.2f}' if d is not None else
                       f'detection {det}')
            if meta.get('query') is not None:
                who += f' (query {meta["query"]})'
            label = kind.replace('_', ' ')
            if meta.get('setting') is not None:
                label += f' [{meta["setting"]}]'
            groups[key] = {'title': f'{label} · {who}' if who else label, 'detection': det,
                           'kind': kind, 'type': key[2], 'items': []}
        groups[key]['items'].append(k)
    out = []
    for g in groups.values():
        if g['type'] == 'grid':
            items = g.pop('items')
            layers = sorted({maps[k].meta['layer'] for k in items}, key=_sort_key)
            heads = sorted({maps[k].meta['head'] for k in items}, key=_sort_key)
            cells = [[None] * len(heads) for _ in layers]
            for k in items:
                cells[layers.index(maps[k].meta['layer'])][heads.index(maps[k].meta['head'])] = k
            g.update(rows=[str(v) for v in layers], cols=[str(v) for v in heads], cells=cells)
        out.append(g)
    order = {None: -1}
    return sorted(out, key=lambda g: (order.get(g['detection'], g['detection'] or 0),))
