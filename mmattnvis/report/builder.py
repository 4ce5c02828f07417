"""Build the HTML report of a run from its result records.

The report is a folder that opens from ``file://`` with no server and no network::

    OUT_DIR/index.html         the page (jinja2 template), run summary rendered in Python
    OUT_DIR/assets/            report.js, report.css (vanilla, shipped with the package)
    OUT_DIR/data/index.js      the gallery index: one entry per image (classes, scores, facets)
    OUT_DIR/data/<id>.js       one image's details, loaded on demand by a <script> tag
    OUT_DIR/thumbs/<id>.jpg    thumbnail with the detections drawn
    OUT_DIR/images/<id>.jpg    the original image at full resolution

The pieces: :mod:`.maps` (maps aligned, normalised and encoded), :mod:`.data` (the other record
contents and the JSON scripts), :mod:`.images` (images, thumbnails, labels) and :mod:`.page`
(``index.html`` and the atomic replacement of the folder). The folder is built next to
``out_dir`` and renamed into place only when complete.
"""
import dataclasses
import json
import os
import os.path as osp
import shutil
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..render.options import check_draw_options
from ..render.points import LEVEL_COLORS
from ..sinks.records import TEMP_PREFIX, load_results
from ..structures import ResultRecord
from ..utils.errors import UserInputError
from .data import (
    ablation_summary,
    clean,
    encoder_data,
    find_map,
    js_call,
    point_rows,
    sampling_data,
)
from .images import (
    PALETTE,
    class_name,
    encode_jpeg,
    label_font,
    label_rects,
    load_image,
    scaled_detections,
    scaled_shape,
    thumbnail,
)
from .maps import (
    colormap_lut,
    data_url,
    facet_layer,
    facet_method,
    map_caption,
    map_groups,
    map_layer,
    shown_meta,
    storage_shape,
)
from .page import PKG_DIR, STATIC_FILES, atomic_directory, write_page

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
        title: Page title (default: :func:`default_title`).
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
    title = title or default_title(task, doc.get('info') or {}, name)
    builder = _Builder(records, doc, colormap=colormap, thumb_size=thumb_size,
                       max_side=max_side, quality=jpeg_quality, search=search)
    with atomic_directory(os.fspath(out_dir)) as tmp:
        builder.write(tmp, title=title, alpha=alpha, progress=progress)
    return osp.join(os.fspath(out_dir), 'index.html')


def display_names(records: Sequence[ResultRecord], stems: Sequence[str]) -> List[str]:
    """What the page calls each image: its path relative to the folder that holds all the
    run's images (``sub/a.jpg``; the file name when they share one folder), else its stem."""
    paths = [osp.abspath(r.image_path) if r.image_path else None for r in records]
    dirs = [osp.dirname(p) for p in paths if p]
    try:
        common = osp.commonpath(dirs) if dirs else ''
    except ValueError:  # paths on different drives
        common = ''
    return [osp.relpath(p, common) if p and common else osp.basename(p) if p else
            stems[i] if i < len(stems) else f'image {i}' for i, p in enumerate(paths)]


def default_title(task: str, info: Dict[str, Any], folder: str = '') -> str:
    """``mmattnvis report · <task> (<mode>) · <model> · <hook> <loop>`` from the run's ``info``
    (the config's name, a hook's loop); the results folder's name only when the run says
    nothing of its model and is not a temporary folder of ``--report``."""
    what = f"{task} ({info['mode']})" if task == 'attention' and info.get('mode') else task
    config = info.get('config')
    model = info.get('model') or (osp.splitext(osp.basename(str(config)))[0] if config else '')
    loop = ' '.join(str(info[k]) for k in ('hook', 'loop') if info.get(k))
    if not (model or loop) and not folder.startswith(TEMP_PREFIX):
        loop = folder
    return ' · '.join(p for p in ('mmattnvis report', what, model, loop) if p)


def _check_options(alpha: float, colormap: str, thumb_size: int, max_side: int,
                   quality: int) -> None:
    """Refuse out-of-range options with a :class:`UserInputError`."""
    check_draw_options(colormap, alpha)
    if thumb_size < 16 or max_side < 16:
        raise UserInputError(f'thumb_size and max_side must be >= 16, got {thumb_size}, '
                             f'{max_side}')
    if not 1 <= quality <= 100:
        raise UserInputError(f'jpeg_quality must be in [1, 100], got {quality}')


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
        self.names = display_names(self.records, list(doc.get('records') or []))

    def write(self, out: str, title: str, alpha: float, progress: Optional[Progress]) -> None:
        """Write the whole report into the empty folder ``out``."""
        for sub in ('assets', 'data', 'thumbs', 'images'):
            os.mkdir(osp.join(out, sub))
        for static in STATIC_FILES:
            shutil.copyfile(osp.join(PKG_DIR, 'static', static), osp.join(out, 'assets', static))
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
            'faithfulness': faith_rows, 'ablation': ablation_summary(self.records),
            'skipped': list(self.doc.get('skipped') or []), 'notes': notes,
        }
        with open(osp.join(out, 'data', 'index.js'), 'w', encoding='utf-8') as f:
            f.write('window.MMATTNVIS_INDEX = ' + json.dumps(
                clean(index), separators=(',', ':'), allow_nan=False) + ';\n')
        write_page(out, title, index, info)

    def _write_record(self, out: str, rid: str, i: int, record: ResultRecord,
                      classes: List[str], layers: List[str], methods: List[str]
                      ) -> Tuple[Dict[str, Any], List[Dict[str, Any]], Optional[str]]:
        """Write one image's files; returns its gallery entry, faithfulness rows and note.

        ``classes``, ``layers`` and ``methods`` (the gallery's facets) grow in place.
        """
        image, note = load_image(record, self.search)
        oh, ow = record.geometry.ori_shape
        sh, sw = scaled_shape((oh, ow), self.max_side)
        scale = sw / ow
        if (sh, sw) != (oh, ow):
            image = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        with open(osp.join(out, 'images', rid + '.jpg'), 'wb') as f:
            f.write(encode_jpeg(image, self.quality))
        with open(osp.join(out, 'thumbs', rid + '.jpg'), 'wb') as f:
            f.write(encode_jpeg(thumbnail(image, scaled_detections(record, scale),
                                          self.thumb_size), self.quality))
        maps, facets, left_out, kept = [], [], [], {}
        for name, m in record.maps.items():
            points = m.meta.get('points')
            try:  # sampling points are drawn as points, not as their splatted grid
                stored = None if points is not None else map_layer(
                    m, record, storage_shape(m, record, (sh, sw)))
            except ValueError as e:  # e.g. a map that is not 2-D: noted, the rest goes on
                left_out.append(f'map {name!r} left out ({e})')
                continue
            kept[name] = m
            lay, meth = facet_layer(m.meta), facet_method(m.meta)
            for value, seen in ((lay, layers), (meth, methods)):
                if value not in seen:
                    seen.append(value)
            pair = [layers.index(lay), methods.index(meth)]
            if pair not in facets:
                facets.append(pair)
            map_entry: Dict[str, Any] = {'name': name, 'label': m.label,
                                         'caption': map_caption(m), 'meta': shown_meta(m.meta),
                                         'shape': list(np.shape(m.data))}
            if stored is not None:
                map_entry.update(stored=list(stored.shape), data=data_url(stored))
            else:
                map_entry['points'] = point_rows(points)
            maps.append(map_entry)
        dets: List[Dict[str, Any]] = []
        font = label_font(record.geometry.ori_shape)
        for d, rect in zip(record.detections, label_rects(record.detections, record.geometry
                                                          .ori_shape, font)):
            cname = class_name(d)
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
            link = find_map(record, row)
            faith.append({'image': i, 'name': self.names[i], 'map': link,
                          'values': {k: v for k, v in row.items() if k != 'image'}})
        detail = {
            'id': rid, 'index': i, 'name': self.names[i], 'path': record.image_path,
            'task': record.task, 'image': f'images/{rid}.jpg', 'width': ow, 'height': oh,
            'font': font,
            'pixels': [sh, sw],
            'geometry': record.geometry.to_dict(), 'detections': dets, 'maps': maps,
            'groups': map_groups(dataclasses.replace(record, maps=kept)),
            'encoder': encoder_data(record),
            'sampling': sampling_data(record), 'faithfulness': faith,
            'settings': settings, 'info': info, 'note': note, 'left_out': left_out,
            'arrays': {n: [list(np.shape(a)), str(np.asarray(a).dtype)]
                       for n, a in record.arrays.items()},
        }
        with open(osp.join(out, 'data', rid + '.js'), 'w', encoding='utf-8') as f:
            f.write(js_call('MMATTNVIS_RECORD', rid, clean(detail)))
        when = ' · '.join(f'{k} {record.info[k]}' for k in ('epoch', 'iter')
                          if record.info.get(k) is not None)
        entry = {'id': rid, 'name': self.names[i], 'thumb': f'thumbs/{rid}.jpg', 'when': when,
                 'dets': [[classes.index(d['cls']), d['score']] for d in dets],
                 'facets': facets, 'maps': len(maps), 'task': record.task,
                 'interactive': ('encoder' if detail['encoder'] else
                                 'sampling' if detail['sampling'] else '')}
        return entry, faith, '; '.join(([note] if note else []) + left_out) or None
