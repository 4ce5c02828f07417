"""Between MMDet data samples and result records: detections, ground truth, drawing samples."""
import os.path as osp
from typing import Any, List, Optional, Sequence

import numpy as np

from ..structures import Detection, ImageGeometry, ResultRecord


def sample_detections(sample, score_thr: float, image: int = 0,
                      classes: Optional[Sequence[str]] = None) -> List[Detection]:
    """The predictions of a ``DetDataSample`` with score > ``score_thr`` (their rank is their
    index in ``pred_instances``; ``query`` is the same index for non-DETR models)."""
    if 'pred_instances' not in sample:
        return []
    pred = sample.pred_instances
    scores = pred.scores.detach().float().cpu().numpy()
    labels = pred.labels.detach().cpu().numpy()
    boxes = pred.bboxes.detach().float().cpu().numpy()
    return [Detection(image, i, i, int(labels[i]), float(scores[i]), boxes[i].copy(),
                      class_name(classes, int(labels[i])))
            for i in np.flatnonzero(scores > score_thr)]


def class_name(classes: Optional[Sequence[str]], label: int) -> Optional[str]:
    """The dataset's name of class ``label`` (``None`` when the classes are unknown)."""
    return str(classes[label]) if classes is not None and 0 <= label < len(classes) else None


def name_detections(dets: Sequence[Detection], classes: Optional[Sequence[str]]) -> None:
    """Fill ``class_name`` from the dataset's classes (in place)."""
    for d in dets:
        if d.class_name is None:
            d.class_name = class_name(classes, d.label)


def new_record(sample, task: str, detections: Sequence[Detection],
               path: Optional[str] = None, info: Optional[dict] = None) -> ResultRecord:
    """A record for one data sample: its image path, geometry and ground truth (if any)."""
    meta = sample.metainfo
    record = ResultRecord(path if path is not None else str(meta.get('img_path') or ''),
                          ImageGeometry.from_metainfo(meta), task, list(detections),
                          info=dict(info or {}))
    if 'img_id' in meta:
        record.info.setdefault('img_id', _plain(meta['img_id']))
    if 'gt_instances' in sample and len(sample.gt_instances):
        gt = sample.gt_instances
        record.arrays['gt_bboxes'] = gt.bboxes.detach().float().cpu().numpy() \
            if hasattr(gt.bboxes, 'detach') else np.asarray(gt.bboxes, np.float32)
        record.arrays['gt_labels'] = np.asarray(gt.labels.cpu(), np.int64)
    return record


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, 'item') else v


def output_path(out_dir: str, path: str, root: Optional[str], suffix: str = '',
                ext: Optional[str] = '.png') -> str:
    """Where a tool writes what it made of ``path``: its path relative to ``root`` (the input
    directory) under ``out_dir``, extension ``ext`` (``None``: the image's own), ``suffix``
    before it; an image outside ``root`` goes flat under ``out_dir``."""
    stem, own = osp.splitext(_relative(path, root))
    return osp.join(out_dir, stem + suffix + (own if ext is None else ext))


def record_stem(path: str, root: Optional[str]) -> str:
    """A file stem for an image: its path relative to ``root``, no extension, ``/`` -> ``__``."""
    return osp.splitext(_relative(path, root))[0].replace(osp.sep, '__')


def _relative(path: str, root: Optional[str]) -> str:
    """``path`` relative to ``root``; its base name when outside ``root`` (or no root)."""
    rel = osp.relpath(path, root) if root else osp.basename(path)
    return osp.basename(path) if rel.startswith('..') else rel
