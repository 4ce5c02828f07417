"""Build the HTML report of a run from its result records.

The report is a folder that opens from ``file://`` with no server and no network::

    OUT_DIR/index.html         the page (jinja2 template), run summary rendered in Python
    OUT_DIR/assets/            report.js, report.css (vanilla, shipped with the package)
    OUT_DIR/data/index.js      the gallery index: one entry per image (classes, scores, facets)
    OUT_DIR/data/<id>.js       one image's details, loaded on demand by a <script> tag
    OUT_DIR/thumbs/<id>.jpg    thumbnail with the detections drawn
    OUT_DIR/images/<id>.jpg    the original image at full resolution

Browsers refuse ``fetch()`` of local files from a ``file://`` page, so every data file is a
script that hands its JSON to a global callback.

Maps are aligned with the image through the record's geometry and normalised here
(:func:`map_layer`), stored as grey PNG ``data:`` URLs at two pixels per map cell (a heat map of
a 640x480 image as a full-resolution colour JPEG weighs 30-120 kB; this weighs 0.3-5 kB), and the
page draws them at full resolution: bilinear upscaling, then the colormap of
:func:`~mmattnvis.render.image.colorize` as a 256-entry table. Encoder self-attention stays
quantised (uint8 per row + float32 row scale, base64) and is dequantised in the page when a
point is clicked. The folder is built next to ``out_dir`` and renamed into place only when complete.
"""
import base64
import dataclasses
import json
import os
import os.path as osp
import secrets
import shutil
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import jinja2
import numpy as np

from ..render.geometry import align_to_image
from ..render.image import colorize, colormap_code, normalize_to_uint8
from ..render.labels import draw_labelled_boxes, place_labels
from ..render.points import LEVEL_COLORS
from ..sinks.records import load_results
from ..structures import Detection, Map2D, ResultRecord, infer_stride
from ..utils.errors import UserInputError

MARKER = '.mmattnvis-report'  # a folder with this file may be replaced by a new report
PKG_DIR = osp.dirname(osp.abspath(__file__))
STATIC_FILES = ('report.js', 'report.css')
# label index -> box colour (RGB), cycled
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
           (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0)]

# map kinds on a DETR token grid (aligned as strided grids, as the attention figures do)
TOKEN_KINDS = ('cross_attention', 'encoder_attention', 'relevance')

Progress = Callable[[int, int], None]


def build_report(results: Union[str, os.PathLike, Sequence[ResultRecord]],
                 out_dir: Union[str, os.PathLike],
                 *,
                 index: Optional[Dict[str, Any]] = None,
                 title: Optional[str] = None,
                 alpha: float = 0.5,
                 colormap: str = 'jet',
                 thumb_size: int = 320,
                 max_side: int = 2048,
                 jpeg_quality: int = 75,
                 progress: Optional[Progress] = None) -> str:
    """Write the HTML report of a run; returns the path of its ``index.html``.

    Args:
        results: A results directory (``--save-results``) or the records themselves.
        out_dir: The report folder. Built in a temporary folder next to it and renamed into
            place when complete; an existing report there is replaced only then. A folder that
            exists and is neither empty nor a report is refused.
        index: The run's index (``task``, ``info``, ``skipped``) when ``results`` are records.
        title: Page title (default: the task and the results folder's name).
        alpha: Initial weight of the heat layers over the image (a slider changes it).
        colormap: OpenCV colormap of the heat layers and the encoder attention.
        thumb_size: Longest side of the gallery thumbnails (pixels).
        max_side: Longest side of the full-resolution view; larger images are scaled down.
        jpeg_quality: JPEG quality of the images and thumbnails.
        progress: Called as ``progress(done, total)`` after each image.

    Raises:
        UserInputError: Missing, empty or incompatible results; unusable ``out_dir``.
    """
    search: Tuple[str, ...] = ()
    if isinstance(results, (str, os.PathLike)):
        src = osp.abspath(os.fspath(results))
        doc, records = load_results(os.fspath(results))
        name = osp.basename(osp.normpath(src))
        search = (src, osp.dirname(src))  # relative image paths: also from the results
    else:
        records = list(results)
        doc = dict(index or {})
        name = ''
        if not records:
            raise UserInputError('no result records to report (the run produced nothing)')
    _check_options(alpha, colormap, thumb_size, max_side, jpeg_quality)
    task = doc.get('task') or (records[0].task if records else '')
    title = title or ' · '.join(p for p in ('mmattnvis report', task, name) if p)
    builder = _Builder(records, doc, colormap=colormap, thumb_size=thumb_size,
                       max_side=max_side, quality=jpeg_quality, search=search)
    with atomic_directory(os.fspath(out_dir)) as tmp:
        builder.write(tmp, title=title, alpha=alpha, progress=progress)
    return osp.join(os.fspath(out_dir), 'index.html')


def _check_options(alpha: float, colormap: str, thumb_size: int, max_side: int,
                   quality: int) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise UserInputError(f'alpha must be in [0, 1], got {alpha:g}')
    try:
        colormap_code(colormap)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    if thumb_size < 16 or max_side < 16:
        raise UserInputError(f'thumb_size and max_side must be >= 16, got {thumb_size}, '
                             f'{max_side}')
    if not 1 <= quality <= 100:
        raise UserInputError(f'jpeg_quality must be in [1, 100], got {quality}')


@contextmanager
def atomic_directory(out_dir: str) -> Iterator[str]:
    """Yield a fresh temporary folder next to ``out_dir``; rename it to ``out_dir`` on success.

    An existing ``out_dir`` must be empty or a previous report (it holds :data:`MARKER`); it is
    moved aside, replaced, then removed. On failure the temporary folder is removed and
    ``out_dir`` is left as it was.
    """
    out_dir = osp.abspath(out_dir)
    parent = osp.dirname(out_dir)
    if osp.lexists(out_dir):
        if osp.islink(out_dir) or not osp.isdir(out_dir):
            raise UserInputError(f'cannot write the report to {out_dir}: it exists and is not a '
                                 'folder')
        if os.listdir(out_dir) and not osp.isfile(osp.join(out_dir, MARKER)):
            raise UserInputError(f'{out_dir} exists and is not an mmattnvis report; choose '
                                 'another output folder (-o) or empty it')
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = osp.join(parent, f'.{osp.basename(out_dir)}.tmp-{secrets.token_hex(6)}')
        os.mkdir(tmp)
    except OSError as e:
        raise UserInputError(f'cannot create the report folder next to {out_dir}: '
                             f'{e.strerror or e}') from None
    try:
        yield tmp
        with open(osp.join(tmp, MARKER), 'w', encoding='utf-8') as f:
            f.write('written by mmattnvis.report.build_report; replaced by the next report\n')
        old = None
        if osp.lexists(out_dir):
            old = osp.join(parent, f'.{osp.basename(out_dir)}.old-{secrets.token_hex(6)}')
            os.rename(out_dir, old)
        try:
            os.rename(tmp, out_dir)
        except BaseException:
            if old is not None:
                os.rename(old, out_dir)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise UserInputError(f'cannot write the report {out_dir}: {err.strerror or err}'
                                 ) from None
        raise


# ----- pieces ---------------------------------------------------------------------------------
def _jpeg(image_rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(image_rgb[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError('JPEG encoding failed')
    return buf.tobytes()


def _scaled_shape(shape: Sequence[int], max_side: int) -> Tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    s = min(1.0, max_side / max(h, w))
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def load_image(record: ResultRecord, search: Sequence[str] = ()) -> Tuple[np.ndarray,
                                                                          Optional[str]]:
    """The record's original image (RGB) and a note when it could not be read (a grey
    placeholder of the original size is returned then). A relative ``image_path`` that is not
    found from the working directory is looked up under each folder of ``search``."""
    h, w = record.geometry.ori_shape
    path = record.image_path
    if path and not osp.isabs(path) and not osp.isfile(path):
        path = next((osp.join(d, path) for d in search if osp.isfile(osp.join(d, path))), path)
    img = cv2.imread(path, cv2.IMREAD_COLOR) if path and osp.isfile(path) else None
    if img is not None and img.shape[:2] == (h, w):
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), None
    why = ('no image path' if not path else 'image not found' if img is None and not
           osp.isfile(path) else 'unreadable image' if img is None else
           f'image is {img.shape[1]}x{img.shape[0]}, the record says {w}x{h}')
    return np.full((h, w, 3), 128, np.uint8), why


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


def _data_url(u8: np.ndarray) -> str:
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


def _class_name(d: Detection) -> str:
    return d.class_name if d.class_name else f'class {d.label}'


def thumbnail(image_rgb: np.ndarray, detections: Sequence[Detection], size: int) -> np.ndarray:
    """``image_rgb`` scaled to ``size`` on its longest side with the detections drawn."""
    h, w = image_rgb.shape[:2]
    th, tw = _scaled_shape((h, w), size)
    small = cv2.resize(image_rgb, (tw, th), interpolation=cv2.INTER_AREA)
    if not detections:
        return small
    sx, sy = tw / w, th / h
    boxes = [[d.bbox[0] * sx, d.bbox[1] * sy, d.bbox[2] * sx, d.bbox[3] * sy]
             for d in detections]
    texts = [f'{_class_name(d)} {d.score:.2f}' for d in detections]
    colors = [PALETTE[d.label % len(PALETTE)] for d in detections]
    return draw_labelled_boxes(small, boxes, texts, colors, scale=0.35)


def label_font(shape: Sequence[int]) -> float:
    """Font size (original-image pixels) of the labels the page draws over an image."""
    return max(6.0, min(int(shape[0]), int(shape[1])) / 32)


def label_rects(detections: Sequence[Detection], shape: Sequence[int],
                font: float) -> List[Tuple[int, int, int, int]]:
    """Where the page puts each detection's label (``x0, y0, x1, y1``, original-image pixels):
    :func:`~mmattnvis.render.labels.place_labels`, so that labels never cover each other (text
    width estimated at 0.6 em a character)."""
    sizes = [(int(np.ceil(0.6 * font * len(f'{_class_name(d)} {d.score:.2f}') + font * 0.4)),
              int(np.ceil(font * 1.3))) for d in detections]
    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)
    rects = place_labels([detections[i].bbox for i in order], [sizes[i] for i in order], shape)
    out: List[Tuple[int, int, int, int]] = [(0, 0, 0, 0)] * len(detections)
    for i, r in zip(order, rects):
        out[i] = tuple(int(v) for v in r)
    return out


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode('ascii')


def _facet_layer(meta: Dict[str, Any]) -> str:
    layer = meta.get('layer')
    return '—' if layer is None else str(layer)


def _facet_method(meta: Dict[str, Any]) -> str:
    return str(meta.get('method') or meta.get('kind') or 'map')


def _sort_key(v: Any) -> Tuple[int, Any]:
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
                who = (f'detection {det}: {_class_name(d)} {d.score:.2f}' if d is not None else
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


def _find_map(record: ResultRecord, row: Dict[str, Any]) -> Optional[str]:
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


def _js(callback: str, *args: Any) -> str:
    body = ', '.join(json.dumps(a, separators=(',', ':'), allow_nan=False) for a in args)
    return f'{callback}({body});\n'


class _Builder:
    """Turns records into the report's files."""

    def __init__(self, records: Sequence[ResultRecord], doc: Dict[str, Any], colormap: str,
                 thumb_size: int, max_side: int, quality: int,
                 search: Sequence[str] = ()) -> None:
        self.records = list(records)
        self.doc = doc
        self.colormap = colormap
        self.thumb_size = thumb_size
        self.max_side = max_side
        self.quality = quality
        self.search = tuple(search)
        stems = list(doc.get('records') or [])
        self.names = [
            stems[i] if i < len(stems) else
            (osp.basename(r.image_path) or f'image {i}') for i, r in enumerate(self.records)
        ]

    def write(self, out: str, title: str, alpha: float, progress: Optional[Progress]) -> None:
        for sub in ('assets', 'data', 'thumbs', 'images'):
            os.mkdir(osp.join(out, sub))
        for f in STATIC_FILES:
            shutil.copyfile(osp.join(PKG_DIR, 'static', f), osp.join(out, 'assets', f))
        classes: List[str] = []
        layers: List[str] = []
        methods: List[str] = []
        entries, faith_rows, notes = [], [], []
        total = len(self.records)
        for i, record in enumerate(self.records):
            rid = f'r{i:05d}'
            entry, rows, note = self._write_record(out, rid, i, record, classes, layers, methods)
            entries.append(entry)
            faith_rows += rows
            if note:
                notes.append(f'{self.names[i]}: {note}')
            if progress is not None:
                progress(i + 1, total)
        info = dict(self.doc.get('info') or {})
        tasks = sorted({r.task for r in self.records})
        index = {
            'title': title, 'task': self.doc.get('task') or ', '.join(tasks), 'alpha': alpha,
            'colormap': self.colormap, 'lut': colormap_lut(self.colormap),
            'level_colors': [list(c) for c in LEVEL_COLORS], 'palette': PALETTE,
            'classes': classes, 'layers': layers, 'methods': methods, 'images': entries,
            'faithfulness': faith_rows, 'ablation': self._ablation_summary(),
            'skipped': list(self.doc.get('skipped') or []), 'notes': notes,
        }
        with open(osp.join(out, 'data', 'index.js'), 'w', encoding='utf-8') as f:
            f.write('window.MMATTNVIS_INDEX = ' + json.dumps(
                _clean(index), separators=(',', ':'), allow_nan=False) + ';\n')
        self._write_html(out, title, index, info, tasks)

    # one image
    def _write_record(self, out: str, rid: str, i: int, record: ResultRecord,
                      classes: List[str], layers: List[str], methods: List[str]
                      ) -> Tuple[Dict[str, Any], List[Dict[str, Any]], Optional[str]]:
        image, note = load_image(record, self.search)
        oh, ow = record.geometry.ori_shape
        sh, sw = _scaled_shape((oh, ow), self.max_side)
        scale = sw / ow
        if (sh, sw) != (oh, ow):
            image = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        with open(osp.join(out, 'images', rid + '.jpg'), 'wb') as f:
            f.write(_jpeg(image, self.quality))
        with open(osp.join(out, 'thumbs', rid + '.jpg'), 'wb') as f:
            f.write(_jpeg(thumbnail(image, self._scaled_dets(record, scale), self.thumb_size),
                          self.quality))
        maps, facets, left_out, kept = [], [], [], {}
        for name, m in record.maps.items():
            try:
                stored = map_layer(m, record, storage_shape(m, record, (sh, sw)))
            except ValueError as e:  # e.g. a map that is not 2-D: noted, the rest goes on
                left_out.append(f'map {name!r} left out ({e})')
                continue
            kept[name] = m
            lay, meth = _facet_layer(m.meta), _facet_method(m.meta)
            for value, seen in ((lay, layers), (meth, methods)):
                if value not in seen:
                    seen.append(value)
            pair = [layers.index(lay), methods.index(meth)]
            if pair not in facets:
                facets.append(pair)
            maps.append({'name': name, 'label': m.label, 'meta': m.meta,
                         'shape': list(np.shape(m.data)), 'stored': list(stored.shape),
                         'data': _data_url(stored)})
        dets = []
        font = label_font(record.geometry.ori_shape)
        for d, rect in zip(record.detections, label_rects(record.detections, record.geometry
                                                          .ori_shape, font)):
            cname = _class_name(d)
            if cname not in classes:
                classes.append(cname)
            dets.append({'rank': d.rank, 'query': d.query, 'label': d.label, 'cls': cname,
                         'score': round(float(d.score), 4),
                         'bbox': [round(float(v), 2) for v in np.asarray(d.bbox)[:4]],
                         'text_box': list(rect)})
        info = dict(record.info)
        rows = info.pop('rows', None) or []
        settings = info.pop('settings', None) or []
        faith = []
        for row in rows:
            link = _find_map(record, row)
            faith.append({'image': i, 'name': self.names[i], 'map': link,
                          'values': {k: v for k, v in row.items() if k != 'image'}})
        detail = {
            'id': rid, 'index': i, 'name': self.names[i], 'path': record.image_path,
            'task': record.task, 'image': f'images/{rid}.jpg', 'width': ow, 'height': oh,
            'font': font,
            'pixels': [sh, sw],
            'geometry': record.geometry.to_dict(), 'detections': dets, 'maps': maps,
            'groups': map_groups(dataclasses.replace(record, maps=kept)),
            'encoder': self._encoder(record),
            'sampling': self._sampling(record), 'faithfulness': faith,
            'settings': settings, 'info': info, 'note': note, 'left_out': left_out,
            'arrays': {n: [list(np.shape(a)), str(np.asarray(a).dtype)]
                       for n, a in record.arrays.items()},
        }
        with open(osp.join(out, 'data', rid + '.js'), 'w', encoding='utf-8') as f:
            f.write(_js('MMATTNVIS_RECORD', rid, _clean(detail)))
        when = ' · '.join(f'{k} {record.info[k]}' for k in ('epoch', 'iter')
                          if record.info.get(k) is not None)
        entry = {'id': rid, 'name': self.names[i], 'thumb': f'thumbs/{rid}.jpg', 'when': when,
                 'dets': [[classes.index(d['cls']), d['score']] for d in dets],
                 'facets': facets, 'maps': len(maps), 'task': record.task,
                 'interactive': ('encoder' if detail['encoder'] else
                                 'sampling' if detail['sampling'] else '')}
        return entry, faith, '; '.join(([note] if note else []) + left_out) or None

    def _scaled_dets(self, record: ResultRecord, scale: float) -> List[Detection]:
        if scale == 1.0:
            return record.detections
        return [Detection(d.image, d.rank, d.query, d.label, d.score,
                          np.asarray(d.bbox, np.float32) * scale, d.class_name)
                for d in record.detections]

    @staticmethod
    def _encoder(record: ResultRecord) -> Optional[Dict[str, Any]]:
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

    @staticmethod
    def _sampling(record: ResultRecord) -> Optional[Dict[str, Any]]:
        pts = {}
        for name, a in record.arrays.items():
            if name.startswith('sampling_points/'):
                a = np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1])[:, :4]
                a = np.where(np.isfinite(a), a, np.nan)
                pts[name.split('/', 1)[1]] = [[None if np.isnan(v) else round(float(v), 3)
                                               for v in p] for p in a]
        return pts or None

    def _ablation_summary(self) -> List[Dict[str, Any]]:
        summary: Dict[str, Dict[str, Any]] = {}
        for r in self.records:
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

    def _write_html(self, out: str, title: str, index: Dict[str, Any], info: Dict[str, Any],
                    tasks: List[str]) -> None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(osp.join(PKG_DIR, 'templates')),
            autoescape=jinja2.select_autoescape(['html']), undefined=jinja2.StrictUndefined)
        from .. import __version__
        n_maps = sum(e['maps'] for e in index['images'])
        n_dets = sum(len(e['dets']) for e in index['images'])
        summary = [('task', index['task']), ('images', len(index['images'])),
                   ('detections', n_dets), ('maps', n_maps)]
        summary += [(str(k), _short(v)) for k, v in info.items()]
        html = env.get_template('index.html').render(
            title=title, summary=summary, skipped=index['skipped'], notes=index['notes'],
            has_faithfulness=bool(index['faithfulness']), has_ablation=bool(index['ablation']),
            version=__version__)
        with open(osp.join(out, 'index.html'), 'w', encoding='utf-8') as f:
            f.write(html)


def _short(v: Any, limit: int = 300) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= limit else text[:limit] + '…'


def _clean(obj: Any) -> Any:
    """JSON-able copy of ``obj``: numpy values to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
