"""One result record per image: what every tool, hook, metric and the report consume.

A record is stored as two files with the same stem: ``<stem>.json`` (everything but the arrays,
with ``version``) and ``<stem>.npz`` (the maps and extra arrays, compressed). :meth:`ResultRecord.
to_files` returns both payloads; the sinks write them (atomically), :meth:`from_files` reads them.
"""
import io
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .detection import Detection
from .geometry import ImageGeometry
from .maps import ARRAY_META_KEYS, Map2D

RECORD_VERSION = 1
TASKS = ('featmap', 'attention', 'cam', 'ablation', 'faithfulness')


class IncompatibleResults(ValueError):
    """A saved record that this version of mmattnvis cannot read."""


@dataclass
class ResultRecord:
    """Everything a run produced for one image.

    Attributes:
        image_path: Where the image was read from ('' for in-memory images).
        geometry: How the image sits in the network input.
        task: One of :data:`TASKS`.
        detections: The predictions shown (already filtered by the run's threshold).
        maps: Named maps, in drawing order; names are unique within the record.
        arrays: Other named arrays (e.g. quantised encoder attention, sampling points).
        info: JSON-able extras: the run's options, tables (faithfulness rows, ablation
            detections per head setting), notes, epoch/iteration of a hook.
    """
    image_path: str
    geometry: ImageGeometry
    task: str
    detections: List[Detection] = field(default_factory=list)
    maps: Dict[str, Map2D] = field(default_factory=dict)
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)

    def add_map(self, name: str, m: Map2D) -> None:
        """Add ``m`` under ``name`` (unique)."""
        if name in self.maps:
            raise KeyError(f'duplicate map name {name!r}')
        self.maps[name] = m

    def to_files(self) -> Tuple[str, bytes]:
        """``(json_text, npz_bytes)`` of this record."""
        map_entries = []
        arrays: Dict[str, np.ndarray] = {}
        for i, (name, m) in enumerate(self.maps.items()):
            key = f'map_{i}'
            arrays[key] = np.asarray(m.data)
            meta = dict(m.meta)
            for k in ARRAY_META_KEYS:  # arrays in the metadata go to the npz too
                if k in meta and meta[k] is not None:
                    a = np.asarray(meta[k])
                    arrays[f'{key}_{k}'] = a
                    meta[k] = {'array': f'{key}_{k}', 'shape': list(a.shape)}
            map_entries.append({'name': name, 'key': key, 'label': m.label,
                                'meta': jsonable(meta), 'shape': list(np.shape(m.data))})
        array_entries = []
        for i, (name, a) in enumerate(self.arrays.items()):
            key = f'array_{i}'
            arrays[key] = np.asarray(a)
            array_entries.append({'name': name, 'key': key, 'shape': list(np.shape(a)),
                                  'dtype': str(np.asarray(a).dtype)})
        doc = {
            'version': RECORD_VERSION,
            'task': self.task,
            'image_path': self.image_path,
            'geometry': self.geometry.to_dict(),
            'detections': [d.to_dict() for d in self.detections],
            'maps': map_entries,
            'arrays': array_entries,
            'info': jsonable(self.info),
        }
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return json.dumps(doc, indent=1, allow_nan=False), buf.getvalue()

    @classmethod
    def from_files(cls, json_text: str, npz_bytes: Optional[bytes]) -> 'ResultRecord':
        """Inverse of :meth:`to_files`; raises :class:`IncompatibleResults` on another version."""
        try:
            doc = json.loads(json_text)
        except json.JSONDecodeError as e:
            raise IncompatibleResults(f'not a result record (invalid JSON: {e.msg})') from None
        if not isinstance(doc, dict) or 'version' not in doc:
            raise IncompatibleResults('not a result record (no "version" field)')
        if doc['version'] != RECORD_VERSION:
            raise IncompatibleResults(
                f'result record version {doc["version"]} (this mmattnvis reads version '
                f'{RECORD_VERSION}); re-run the tool with this version')
        arrays: Mapping[str, np.ndarray] = {}
        if npz_bytes is not None:
            with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        try:
            maps = {e['name']: Map2D(arrays[e['key']], e.get('label', ''),
                                     _meta_arrays(dict(e['meta']), arrays))
                    for e in doc['maps']}
            extra = {e['name']: arrays[e['key']] for e in doc['arrays']}
            return cls(doc['image_path'], ImageGeometry.from_dict(doc['geometry']),
                       doc['task'], [Detection.from_dict(d) for d in doc['detections']],
                       maps, extra, dict(doc.get('info', {})))
        except KeyError as e:
            raise IncompatibleResults(f'result record lacks {e}') from None


def _meta_arrays(meta: Dict[str, Any], arrays: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """``meta`` with its :data:`ARRAY_META_KEYS` references replaced by their npz arrays (a
    record written before they were kept there holds the values as lists: left as they are)."""
    for k in ARRAY_META_KEYS:
        ref = meta.get(k)
        if isinstance(ref, dict) and 'array' in ref:
            meta[k] = arrays[ref['array']]
    return meta


def jsonable(obj: Any) -> Any:
    """JSON-able copy of ``obj``: numpy values and tuples to Python types, non-finite floats to
    None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
