"""The errors task: TIDE's error labels per image, why each missed object was missed, and a map
for every error (the false box; the ground-truth box of a missed object).

``ErrorRun(model, options).run_batch(inputs, data_samples)`` follows the Run protocol of
``docs/runner_api.md``: ``data_samples`` carry ``gt_instances`` (original-image pixels); samples
that already carry ``pred_instances`` (a runner's test-step outputs) are labelled as they are,
without another forward pass. :meth:`ErrorRun.summarize` turns the records of a whole data set
into TIDE's counts and dAP per kind (and per class).
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..capture.attention import AttentionCapture, is_detr_family
from ..compat.mmdet_candidates import PreNMSCandidates
from ..methods.attention import (
    DecoderCrossAttention,
    DeformableSamplingPoints,
    detections_for_queries,
)
from ..methods.cam import DetectedBatch
from ..methods.explainers import BLACK_BOX, DRISEOptions, build_explainer, check_method
from ..metrics.error_ap import summarize_errors
from ..metrics.errors import ImageErrors, error_info, label_image, miss_reason
from ..registry import RUNS
from ..render.geometry import ImageGeometry, align_to_image
from ..structures import Detection, Map2D, ResultRecord
from ..utils.errors import UserInputError
from .options import OptionError
from .records import class_name, new_record, sample_detections
from .run import Run, RunOptions

#: Explainers that need no gradients (they perturb the input).
GRADIENT_FREE = BLACK_BOX


@dataclass
class ErrorOptions(RunOptions):
    """Options of the errors task (the hook's and ``--errors``' fields).

    Attributes:
        score_thr: Detections above this score are labelled (``>``, as the other tools).
        fg_iou: TIDE's foreground IoU.
        bg_iou: TIDE's background IoU.
        max_dets: Detections evaluated per image (TIDE's ``max_dets``).
        method: Map of each error: ``'drise'`` (ground-truth box and class as the target of a
            missed object), ``'odam'`` or a Grad-CAM name (missed objects: the pre-NMS candidate
            with the highest IoU), or ``None`` for labels only.
        target_layers: Layers of the gradient methods.
        max_maps: Errors mapped per image (false positives by score, then missed objects).
        reasons: Find why each missed object was missed (one extra pass with every candidate).
        drise_masks, drise_grid, drise_prob, drise_batch, seed: D-RISE's options.
    """
    score_thr: float = 0.3
    fg_iou: float = 0.5
    bg_iou: float = 0.1
    max_dets: int = 100
    method: Optional[str] = 'drise'
    target_layers: Sequence[str] = ('neck', )
    max_maps: int = 8
    reasons: bool = True
    drise_masks: int = 300
    drise_grid: int = 16
    drise_prob: float = 0.5
    drise_batch: Optional[int] = None
    seed: int = 0

    def validate(self) -> None:
        """:class:`OptionError` naming the field of a bad value."""
        if not 0.0 <= float(self.score_thr) < 1.0:
            raise OptionError('score_thr', f'must be in [0, 1), got {self.score_thr}')
        if not 0.0 < float(self.bg_iou) <= float(self.fg_iou) <= 1.0:
            raise OptionError('fg_iou', f'need 0 < bg_iou <= fg_iou <= 1, got bg_iou '
                              f'{self.bg_iou}, fg_iou {self.fg_iou}')
        if int(self.max_dets) < 1 or int(self.max_maps) < 0:
            raise OptionError('max_maps', 'need max_dets >= 1 and max_maps >= 0')
        if self.method is not None:
            try:
                check_method(str(self.method))
            except UserInputError as err:
                raise OptionError('method', str(err)) from None


@RUNS.register_module(name='errors')
class ErrorRun(Run):
    """Error labels, missed-object reasons and error maps, one record per image."""

    task = 'errors'
    options_class = ErrorOptions

    def __init__(self, model, options: ErrorOptions, cfg: Any = None) -> None:
        super().__init__(model, options, cfg)
        self.needs_grad = options.method is not None and options.method not in GRADIENT_FREE
        self._queries: Optional[tuple] = None  # DETR: (attention, queries, metainfo) of a pass
        self.explainer = None if options.method is None else build_explainer(
            options.method, options.target_layers,
            drise=DRISEOptions(options.drise_masks, options.drise_grid, options.drise_prob,
                               options.drise_batch, options.seed), progress=False)

    def run_batch(self, inputs: Sequence[torch.Tensor],
                  data_samples: Sequence[Any]) -> List[ResultRecord]:
        """One record per sample: labels in ``info['errors']``, maps ``error/d<rank>`` (false
        positives) and ``error/gt<index>`` (missed objects)."""
        samples = list(data_samples)
        if not all('pred_instances' in s for s in samples):
            with torch.no_grad():
                samples = self.model.test_step({'inputs': list(inputs),
                                                'data_samples': samples})
        return [self._image(inp, s) for inp, s in zip(inputs, samples)]

    # -- one image -------------------------------------------------------------------------
    def _image(self, inp: torch.Tensor, sample) -> ResultRecord:
        o = self.options
        dets = sample_detections(sample, o.score_thr, 0, self.classes)
        record = new_record(sample, self.task, dets, None, {'score_thr': o.score_thr})
        gt = _ground_truth(sample)
        if gt is None:
            record.info['errors'] = {'note': 'no ground truth in the data sample'}
            return record
        gt_boxes, gt_labels = gt
        labels = label_image(np.stack([d.bbox for d in dets]) if dets else np.zeros((0, 4)),
                             [d.score for d in dets], [d.label for d in dets], gt_boxes,
                             gt_labels, o.fg_iou, o.bg_iou, o.max_dets)
        info = dict(error_info(o.fg_iou, o.bg_iou, o.score_thr), **labels.to_dict())
        info['image'] = _image_labels(labels)
        for entry, d in zip(info['detections'], dets):
            entry.update(rank=d.rank, label=d.label, score=d.score)
        for entry, box in zip(info['ground_truth'], gt_boxes):
            entry.update(bbox=[float(v) for v in box],
                         class_name=class_name(self.classes, entry['label']))
        record.info['errors'] = info
        record.arrays['gt_bboxes'] = gt_boxes.astype(np.float32)
        record.arrays['gt_labels'] = gt_labels.astype(np.int64)
        missed = labels.missed
        fps = [i for i in labels.order if labels.kinds[i] not in ('tp', 'ignored')]
        if not missed and not (fps and self.explainer is not None):
            return record
        processed = self.model.data_preprocessor({'inputs': [inp], 'data_samples': [sample]},
                                                 False)
        image, psample = processed['inputs'], processed['data_samples'][0]
        psample.pred_instances = sample.pred_instances
        candidates = self._candidates(image, psample) if missed and o.reasons else None
        for g in missed:
            entry = info['ground_truth'][g]
            if candidates is not None:
                cand_boxes, cand_scores, cand_labels = candidates
                entry.update(miss_reason(gt_boxes[g], gt_labels[g], cand_boxes, cand_scores,
                                         cand_labels, o.score_thr, o.fg_iou))
        if self.explainer is not None and o.max_maps > 0:
            self._maps(record, image, psample, dets, fps, missed, gt_boxes, gt_labels,
                       candidates)
        if self._queries is not None:
            self._query_attention(record, missed[:max(o.max_maps, 0)])
        return record

    def _candidates(self, image: torch.Tensor, sample) -> Optional[Tuple[np.ndarray, ...]]:
        """Every candidate before NMS; for a DETR-family model also the cross-attention of
        the forward, with each candidate's query (:meth:`_query_attention`)."""
        ctx = PreNMSCandidates(self.model)
        self._queries = None
        if not ctx.supported:
            return None
        detr = is_detr_family(self.model)
        capture = AttentionCapture(self.model, parts=('decoder_cross', )) if detr else None
        with ctx, torch.no_grad():
            if capture is None:
                out = self.model.predict(image, [sample.clone()], rescale=True)
            else:
                with capture:
                    out = self.model.predict(image, [sample.clone()], rescale=True)
                    queries = detections_for_queries(self.model, capture.record, out, -1.0)[0]
                self._queries = (capture.record, queries, sample.metainfo)
        p = out[0].pred_instances
        return (p.bboxes.detach().float().cpu().numpy(), p.scores.detach().float().cpu().numpy(),
                p.labels.detach().cpu().numpy())

    def _query_attention(self, record: ResultRecord, missed: Sequence[int]) -> None:
        """DETR family: for each missed object, the last decoder layer's cross-attention of
        its best query (the pre-NMS candidate with the highest IoU), on the image's pixels
        (map ``error/gt<g>/query``; deformable models: the query's sampling points, splatted
        and blurred, with the points in ``meta['points']``)."""
        assert self._queries is not None
        attn, queries, metainfo = self._queries
        self._queries = None
        by_rank = {d.rank: d for d in queries}
        geom = ImageGeometry.from_metainfo(metainfo)
        h, w = (int(v) for v in geom.ori_shape[:2])
        for g in missed:
            entry = record.info['errors']['ground_truth'][g]
            det = by_rank.get(entry.get('candidate', -1))
            if det is None:
                continue
            m = _query_map(attn, det, geom, (h, w))
            if m is None:
                continue
            name = f'error/gt{g}/query'
            m.meta.update(kind='error', error='missed', gt=g, query=det.query, aligned=True,
                          candidate_iou=entry.get('candidate_iou'), method='attention',
                          target='best query (highest IoU): cross-attention, last layer')
            m.label = f'missed (query {det.query} attention)'
            record.add_map(name, m)
            entry['query_map'] = name

    def _maps(self, record: ResultRecord, image: torch.Tensor, sample, dets: List[Detection],
              fps: List[int], missed: List[int], gt_boxes: np.ndarray, gt_labels: np.ndarray,
              candidates) -> None:
        o = self.options
        pos = {d.rank: k for k, d in enumerate(dets)}
        fp_targets = [dets[i] for i in fps][:o.max_maps]
        room = o.max_maps - len(fp_targets)
        gradient = self.needs_grad
        miss_targets, names = [], []
        for g in missed[:max(room, 0)]:
            entry = record.info['errors']['ground_truth'][g]
            if gradient:
                c = entry.get('candidate', -1)
                if candidates is None or c < 0:
                    entry['map_note'] = 'no pre-NMS candidate to explain'
                    continue
                box, label, score = candidates[0][c], int(candidates[2][c]), candidates[1][c]
                target = 'best pre-NMS candidate (highest IoU)'
            else:
                box, label, score = gt_boxes[g], int(gt_labels[g]), 1.0
                target = 'ground-truth box and class'
            miss_targets.append(Detection(0, -1 - g, -1, label, float(score),
                                          np.asarray(box, np.float32)))
            names.append((g, target))
        for targets, pre_nms in ((fp_targets, False), (miss_targets, gradient)):
            if not targets:
                continue
            batch = DetectedBatch(image, [sample], [targets])
            assert self.explainer is not None
            if pre_nms:
                with PreNMSCandidates(self.model), torch.enable_grad():
                    maps = self.explainer.explain(self.model, detected=batch).maps[0]
            else:
                with torch.enable_grad() if gradient else torch.no_grad():
                    maps = self.explainer.explain(self.model, detected=batch).maps[0]
            for d, m in zip(targets, maps):
                if d.rank >= 0:
                    entry = record.info['errors']['detections'][pos[d.rank]]
                    name = f'error/d{d.rank}'
                    m.meta.update(kind='error', error=entry['kind'], detection=d.rank)
                    entry['map'] = name
                else:
                    g = -1 - d.rank
                    name = f'error/gt{g}'
                    target = dict(names)[g]
                    m.meta.update(kind='error', error='missed', gt=g, target=target)
                    record.info['errors']['ground_truth'][g].update(map=name, map_target=target)
                m.meta.update(method=o.method, aligned=True)
                m.label = f'{m.meta["error"]} ({o.method})'
                record.add_map(name, m)

    # -- data set --------------------------------------------------------------------------
    @classmethod
    def summarize(cls, records: Sequence[ResultRecord]) -> Dict[str, float]:
        """TIDE's numbers over the records of a data set (every rank's), flat: ``AP50``,
        ``count_<kind>``, ``dAP_<kind>`` (see :func:`summarize_labels` for the per-class table)."""
        return flat_summary(summarize_labels(
            [r.info.get('errors', {}).get('image') for r in records]))


def _query_map(attn, det: Detection, geom: ImageGeometry, hw: Tuple[int, int]) -> Optional[Map2D]:
    """The last decoder layer's attention of ``det``'s query on the original image's pixels."""
    import cv2
    dense = sorted(layer for part, layer in attn.dense if part == 'decoder_cross')
    deform = sorted(layer for part, layer in attn.deformable if part == 'decoder_cross')
    if dense:
        m = DecoderCrossAttention(None, 'mean').compute((attn, det, dense[-1]))[0]
        data = align_to_image(m, geom)
        return Map2D(np.asarray(data, np.float32), m.label, dict(m.meta, layer=dense[-1]))
    if not deform:
        return None
    m = DeformableSamplingPoints(None, per_head=False).compute(
        (attn, 'decoder_cross', deform[-1], det.image, det.query, geom))[0]
    pts = np.asarray(m.meta['points'], np.float32)
    heat: np.ndarray = np.zeros(hw, np.float32)
    xs = np.clip(pts[:, 0].astype(int), 0, hw[1] - 1)
    ys = np.clip(pts[:, 1].astype(int), 0, hw[0] - 1)
    np.add.at(heat, (ys, xs), pts[:, 2])
    sigma = max(1.0, 0.02 * max(hw))
    heat = cv2.GaussianBlur(heat, (0, 0), sigma)
    return Map2D(heat, m.label, dict(m.meta, layer=deform[-1]))


def errors_page(out_dir: str, summary: Dict[str, Any], rows: Sequence[dict]) -> str:
    """Write ``errors.html`` (per-class table, every error filterable by kind) into
    ``out_dir``."""
    from ..report.errors_page import write_errors_page
    return write_errors_page(out_dir, summary, rows)


def record_error_rows(stem: str, record: ResultRecord,
                      classes: Optional[Sequence[str]]) -> List[dict]:
    """The rows of ``errors.html`` for one record."""
    from ..report.errors_page import error_rows
    return error_rows(stem, record.info.get('errors', {}), list(classes or []))


def flat_summary(summary: Dict[str, Any]) -> Dict[str, float]:
    """The scalars of a :func:`summarize_labels` result."""
    out = {'AP50': float(summary['ap'])}
    out.update({f'count_{k}': float(v) for k, v in summary['counts'].items()})
    out.update({f'dAP_{k}': float(v) for k, v in summary['dap'].items()})
    return out


def summarize_labels(labels: Sequence[Optional[Dict[str, Any]]],
                     classes: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """TIDE's numbers from the ``info['errors']['image']`` entries of a data set's records
    (``None`` entries -- images without ground truth -- are left out)."""
    return summarize_errors([_from_image_labels(x) for x in labels if x]).to_dict(classes)


def _ground_truth(sample) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    if 'gt_instances' not in sample:
        return None
    gt = sample.gt_instances
    boxes = getattr(gt.bboxes, 'tensor', gt.bboxes)
    boxes = np.asarray(boxes.detach().cpu() if hasattr(boxes, 'detach') else boxes,
                       np.float64).reshape(-1, 4)
    return boxes, np.asarray(gt.labels.cpu(), np.int64).reshape(-1)


def _image_labels(res: ImageErrors) -> Dict[str, Any]:
    """What :meth:`ErrorRun.summarize` needs of an image, JSON-able."""
    return {'kinds': res.kinds, 'det_gt': res.det_gt, 'gt_status': res.gt_status,
            'order': res.order, 'scores': res.scores.tolist(), 'labels': res.labels.tolist(),
            'gt_labels': res.gt_labels.tolist(),
            'fixed': [[int(k), v] for k, v in res.fixed.items()]}


def _from_image_labels(d: Dict[str, Any]) -> ImageErrors:
    n, g = len(d['kinds']), len(d['gt_status'])
    return ImageErrors(list(d['kinds']), list(d['det_gt']), [0.0] * n, list(d['gt_status']),
                       [-1] * g, list(d['order']), np.asarray(d['scores'], np.float64),
                       np.asarray(d['labels'], np.int64), np.asarray(d['gt_labels'], np.int64),
                       {int(k): v for k, v in d['fixed']})


__all__ = ['ErrorOptions', 'ErrorRun', 'summarize_labels', 'flat_summary', 'errors_page',
           'record_error_rows']
