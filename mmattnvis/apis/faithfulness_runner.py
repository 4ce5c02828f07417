"""Faithfulness of saliency methods over a dataset (``tools/eval_faithfulness.py``).

For every kept detection of every image, each method's map (and baseline maps: a random map and,
on request, the box itself and a blob the size of the box) is scored with the
pointing game against the predicted box and, where annotations exist, against the matching
ground-truth box, the energy-based pointing game, and deletion / insertion AUC of the detection's
D-RISE similarity. Results are averaged per method.

The ODAM protocol (Zhao et al., ICLR 2023) is computed alongside, from the same perturbed images'
predictions: the pointing game with the maximum strictly inside the ground-truth box, ODAM
deletion / insertion (best same-class score among predictions with IoU > 0.5, normalised by the
score on the unperturbed image) and ODI (energy on the other objects over energy on all objects;
ground-truth boxes where annotations exist, the other kept detections otherwise).
"""
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..methods.cam import detect
from ..methods.explainers import DRISEOptions, build_explainer, is_black_box
from ..metrics.faithfulness import (
    BASELINES,
    auc,
    box_iou,
    detection_similarity,
    energy_pointing_game,
    perturbation_images,
    pointing_game,
)
from ..metrics.localisation import effective_area, energy_in_mask, mask_iou
from ..metrics.odam_protocol import object_discrimination_index, odam_score, pointing_game_strict
from ..metrics.sanity import sanity_passed
from ..registry import RUNS
from ..structures import Detection, Map2D, ResultRecord
from ..utils.errors import UserInputError
from .coco_gt import GroundTruth, find_dataset
from .faithfulness_table import COLUMNS, FaithfulnessTable, oa
from .inference import UnreadableImages, load_image, prepare_batch
from .options import OptionError
from .randomisation import STAGES, sanity_correlations
from .records import new_record, sample_detections
from .run import Run, RunOptions, attach_ground_truth, batch_dict, ground_truth, image_seed

RANDOM = 'random'


@dataclass
class FaithfulnessOptions(RunOptions):
    """What to evaluate (the ``tools/eval_faithfulness.py`` flags)."""
    methods: Sequence[str] = ('gradcam', )
    target_layers: Sequence[str] = ('neck', )
    score_thr: float = 0.3
    topk: int = 5
    steps: int = 20
    max_images: int = 0
    batch_size: int = 8
    tolerance: float = 0.0
    seed: int = 0
    insertion: bool = True
    sanity: bool = False
    box_curves: bool = False  # also deletion / insertion inside the box, cell by cell
    baselines: Sequence[str] = (RANDOM, )  # of BASELINES, scored beside the methods
    fusion: Optional[str] = None  # multi-layer fusion of the gradient maps (None: the default)
    pool_stride: Optional[int] = None  # fused maps averaged on cells of this many input pixels
    drise: DRISEOptions = field(default_factory=DRISEOptions)

    def validate(self) -> None:
        if self.steps < 2:
            raise OptionError('steps', '--steps must be >= 2')
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise OptionError('baselines', f'unknown baseline {unknown[0]!r}: choose from '
                              f'{", ".join(BASELINES)}')
        if not self.methods and not self.baselines:
            raise OptionError('methods', 'no method given')

    @classmethod
    def from_fields(cls, **fields: Any) -> 'FaithfulnessOptions':
        """As :meth:`CAMOptions.from_fields <mmattnvis.apis.cam.CAMOptions.from_fields>`
        (``method``/``methods``, ``drise_*``, ``seed``; ``no_insertion``)."""
        from .cam import DRISE_FIELDS
        if 'method' in fields:
            fields['methods'] = fields.pop('method')
        if isinstance(fields.get('methods'), str):
            fields['methods'] = [fields['methods']]
        if 'no_insertion' in fields:
            fields['insertion'] = not fields.pop('no_insertion')
        drise: Dict[str, Any] = {DRISE_FIELDS[k]: fields.get(k) if k == 'seed' else fields.pop(k)
                                 for k in list(fields) if k in DRISE_FIELDS}
        options = super().from_fields(**fields)
        options.drise = DRISEOptions(**drise)
        return options


def matching_index(det: Detection, gt, iou_thr: float = 0.5) -> Optional[int]:
    """Index of the ground-truth box of the detection's class that overlaps it most (IoU >=
    ``iou_thr``), or ``None``."""
    if gt is None:
        return None
    boxes, labels = gt[0], gt[1]
    same = np.flatnonzero(labels == det.label)
    if not same.size:
        return None
    ious = box_iou(det.bbox, boxes[same])
    best = int(ious.argmax())
    return int(same[best]) if ious[best] >= iou_thr else None


def matching_gt(det: Detection, gt, iou_thr: float = 0.5) -> Optional[np.ndarray]:
    """The ground-truth box of the detection's class that overlaps it most (IoU >= ``iou_thr``)."""
    index = matching_index(det, gt, iou_thr)
    return None if index is None else gt[0][index]


class DetectionScorer:
    """Images -> the D-RISE similarity of one detection on each (batched test steps)."""

    def __init__(self, model, pipeline, batch_size: int = 8) -> None:
        self.model = model
        self.pipeline = pipeline
        self.batch_size = batch_size

    def predictions(self, images: List[np.ndarray]):
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            data = prepare_batch(chunk, self.pipeline)
            with torch.no_grad():
                samples = self.model.test_step(data)
            for s in samples:
                p = s.pred_instances
                out.append((p.bboxes.cpu().numpy(), p.scores.cpu().numpy(),
                            p.labels.cpu().numpy()))
        return out

    def for_detection(self, det: Detection) -> Callable[[List[np.ndarray]], List[float]]:

        def score(images: List[np.ndarray]) -> List[float]:
            return [detection_similarity(det.bbox, det.label, *p)
                    for p in self.predictions(images)]

        return score


def _objects(det: Detection, dets: Sequence[Detection], gt_box, img_gt):
    """The explained object's box and the other objects' boxes for ODI: ground truth where the
    detection has a matching ground-truth box, the kept detections otherwise."""
    if gt_box is not None:
        boxes = img_gt[0]
        return gt_box, [b for b in boxes if not np.array_equal(b, gt_box)]
    return det.bbox, [d.bbox for d in dets if d is not det]


#: In-box curves perturb cells of the image's longer side / this many pixels.
BOX_CELLS = 32


def box_cell(shape: Sequence[int]) -> int:
    """The side in pixels of the cells the in-box curves perturb."""
    return max(2, round(max(int(shape[0]), int(shape[1])) / BOX_CELLS))


def _curves(img: np.ndarray, sal: np.ndarray, det: Detection, scorer: 'DetectionScorer',
            mode: str, steps: int, rng: np.random.Generator, start: float,
            in_box: bool = False):
    """Deletion / insertion AUC of the D-RISE similarity and of the ODAM score (normalised by
    ``start``, the score on the unperturbed image) from one set of perturbed predictions. With
    ``in_box``, only the box's pixels are perturbed, cell by cell (:data:`BOX_CELLS`)."""
    fractions, images = perturbation_images(
        img, sal, mode, steps, rng=rng, region=det.bbox if in_box else None,
        cell=box_cell(img.shape) if in_box else 1)
    preds = scorer.predictions(images)
    drise = [detection_similarity(det.bbox, det.label, *p) for p in preds]
    odam = [odam_score(det.bbox, det.label, *p) / start if start > 0 else 0.0 for p in preds]
    return auc(fractions, drise), auc(fractions, odam)


@RUNS.register_module(name='faithfulness')
class FaithfulnessRun(Run):
    """The faithfulness task: every method (and the baseline maps) scored on every kept
    detection of an image; one result record per image (its scored maps, its rows in
    ``info['rows']``), the rows also kept in :attr:`table`. The ground truth is each sample's
    ``gt_instances`` (original-image pixels); the random baseline is seeded per image.

    Raises:
        UserInputError: Bad options, before any image.
    """

    task = 'faithfulness'
    options_class = FaithfulnessOptions
    needs_grad = True

    def __init__(self, model, options: FaithfulnessOptions, cfg: Any = None) -> None:
        super().__init__(model, options, cfg)
        extra: Dict[str, Any] = {} if options.fusion is None else {'fusion': options.fusion}
        if options.pool_stride:
            extra['pool_stride'] = options.pool_stride
        self.cams = [build_explainer(m, options.target_layers, batch_size=options.batch_size,
                                     drise=options.drise, progress=False, **extra)
                     for m in options.methods]
        self.table = FaithfulnessTable()

    @property
    def scorer(self) -> 'DetectionScorer':
        return DetectionScorer(self.model, self.pipeline, self.options.batch_size)

    def run_batch(self, inputs, data_samples) -> List[ResultRecord]:
        """Score each sample; its image is read again from ``img_path`` (the perturbations
        start from the original image)."""
        out = []
        for b, sample in enumerate(data_samples):
            img = load_image(sample.metainfo['img_path'])
            out.append(self._run_one(img, batch_dict([inputs[b]], [sample])))
        return out

    def run_image(self, img: np.ndarray, path: str, img_gt=None) -> ResultRecord:
        """Score one image (BGR) whose ground truth is ``img_gt`` (``(boxes, labels)`` or
        ``None``)."""
        data = prepare_batch([img], self.pipeline, [path])
        if img_gt is not None:
            attach_ground_truth(data['data_samples'][0], img_gt[0], img_gt[1],
                                getattr(img_gt, 'rles', None))
        return self._run_one(img, data)

    @classmethod
    def summarize(cls, records: Sequence[ResultRecord]) -> Dict[str, float]:
        """Per method, the mean of each metric over every detection of ``records``."""
        table = FaithfulnessTable([row for r in records for row in r.info.get('rows', [])])
        return {f"{s['method']}/{k}": v for s in table.summary() for k, v in s.items()
                if k not in ('method', 'detections') and v is not None}

    def _run_one(self, img: np.ndarray, data: Dict[str, Any]) -> ResultRecord:
        model, options = self.model, self.options
        data_sample = data['data_samples'][0]
        img_gt = ground_truth(data_sample)
        path = str(data_sample.metainfo.get('img_path') or '')
        rng = np.random.default_rng(image_seed(options.seed, data_sample))
        detected = detect(model, data, options.score_thr, options.topk)
        dets = detected.detections[0]
        maps: Dict[str, List[np.ndarray]] = {}
        seconds: Dict[str, float] = {}
        for method, cam in zip(options.methods, self.cams):
            start = time.perf_counter()
            maps[method] = [m.data for m in cam.explain(model, detected=detected).maps[0]]
            seconds[method] = (time.perf_counter() - start) / max(1, len(dets))
        for name in dict.fromkeys(options.baselines):
            start = time.perf_counter()
            maps[name] = [BASELINES[name]((img.shape[0], img.shape[1]), det.bbox, rng)
                          for det in dets]
            seconds[name] = (time.perf_counter() - start) / max(1, len(dets))
        sanity = self._sanity(detected, maps) if options.sanity and dets else {}
        scorer = self.scorer
        start_preds = scorer.predictions([img])[0] if dets else None
        first_row = len(self.table.rows)
        classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
        record = new_record(detected.samples[0], 'faithfulness',
                            sample_detections(detected.samples[0], options.score_thr, 0, classes),
                            path, {'methods': list(maps),
                                   'layers': list(options.target_layers), 'columns': []})
        for i, det in enumerate(dets):
            record.info['columns'].append({'kind': 'detection', 'detection': det.rank})
            for method, per_det in maps.items():
                record.add_map(f'd{det.rank}/{method}', Map2D(
                    np.asarray(per_det[i], np.float32), method,
                    {'kind': 'explainer', 'method': method, 'layer': self.layer(method),
                     'detection': det.rank, 'column': i, 'aligned': True}))
            assert start_preds is not None
            extra = {m: dict(seconds=seconds[m], **_sanity_columns(sanity, m, i)) for m in maps}
            self._score(scorer, img, path, i, det, dets, [(m, v[i]) for m, v in maps.items()],
                        img_gt, start_preds, extra)
        record.info['rows'] = self.table.rows[first_row:]
        return record

    def layer(self, method: str) -> Optional[str]:
        """The layers a method's map was computed on (``None``: the black-box methods and the
        baselines)."""
        if is_black_box(method) or method in BASELINES:
            return None
        return ', '.join(self.options.target_layers)

    def _sanity(self, detected, maps: Dict[str, List[np.ndarray]]):
        """Spearman correlations of every method's maps after cascading randomisation."""
        explainers = {m: _explain_fn(cam, detected)
                      for m, cam in zip(self.options.methods, self.cams)}
        for name in self.options.baselines:  # a baseline does not use the model
            explainers[name] = (lambda fixed: lambda _model: fixed)(maps[name])
        return sanity_correlations(self.model, explainers, maps, self.options.seed)

    def _score(self, scorer, img, path, i, det, dets, maps, img_gt, start_preds,
               extra) -> None:
        options = self.options
        gt_index = matching_index(det, img_gt)
        gt_box = None if gt_index is None else img_gt[0][gt_index]
        mask = (img_gt.mask(gt_index, img.shape) if gt_index is not None
                and isinstance(img_gt, GroundTruth) else None)
        own, others = _objects(det, dets, gt_box, img_gt)
        start = odam_score(det.bbox, det.label, *start_preds)
        for method, sal in maps:
            tie = np.random.default_rng(options.seed + i)
            deletion, odam_del = _curves(img, sal, det, scorer, 'deletion', options.steps,
                                         tie, start)
            insertion = odam_ins = None
            if options.insertion:
                insertion, odam_ins = _curves(img, sal, det, scorer, 'insertion',
                                              options.steps, tie, start)
            box: Dict[str, Optional[float]] = {}
            if options.box_curves:
                box['box_deletion_auc'] = _curves(img, sal, det, scorer, 'deletion',
                                                  options.steps, tie, start, True)[0]
                box['box_insertion_auc'] = (_curves(img, sal, det, scorer, 'insertion',
                                                    options.steps, tie, start, True)[0]
                                            if options.insertion else None)
                box['box_oa'] = oa(box['box_insertion_auc'], box['box_deletion_auc'])
            self.table.rows.append(dict(
                image=osp.basename(path), detection=i, label=det.label,
                score=round(det.score, 4), method=method, layer=self.layer(method),
                pointing_game=float(pointing_game(sal, det.bbox, options.tolerance)),
                pointing_game_gt=(None if gt_box is None else
                                  float(pointing_game(sal, gt_box, options.tolerance))),
                energy_pg=energy_pointing_game(sal, det.bbox),
                energy_mask=None if mask is None else energy_in_mask(sal, mask),
                mask_iou=None if mask is None else mask_iou(sal, mask),
                effective_area=effective_area(sal, det.bbox),
                deletion_auc=deletion, insertion_auc=insertion, oa=oa(insertion, deletion),
                **box, **extra[method],
                pointing_game_gt_strict=(None if gt_box is None else
                                         float(pointing_game_strict(sal, gt_box))),
                odam_deletion=odam_del, odam_insertion=odam_ins,
                odi=object_discrimination_index(sal, own, others)))


def _explain_fn(cam, detected):
    """``model -> maps of the detections of ``detected``'s image`` for the sanity check; ``None``
    maps when the (randomised) model leaves the explainer nothing to explain."""

    def explain(model) -> List[Optional[np.ndarray]]:
        try:
            return [m.data for m in cam.explain(model, detected=detected).maps[0]]
        except UserInputError:
            return [None] * len(detected.detections[0])

    return explain


def _sanity_columns(sanity, method: str, i: int) -> dict:
    if not sanity:
        return {}
    rhos = {k: v for k, v in sanity[method][i].items() if k in STAGES}
    out = {f'sanity_{stage}': rhos.get(stage) for stage in STAGES}
    passed = sanity_passed(rhos) if rhos and None not in rhos.values() else None
    out['sanity_pass'] = None if passed is None else float(passed)
    out['sanity_flat'] = sanity[method][i].get('flat')
    return out


def evaluate(model, pipeline, images: Sequence[str], gt, options: FaithfulnessOptions,
             progress: Optional[Callable[[], None]] = None,
             unreadable: Optional[UnreadableImages] = None,
             on_record: Optional[Callable[[ResultRecord, str], None]] = None
             ) -> FaithfulnessTable:
    """Run :class:`FaithfulnessRun` over ``images``; returns the table of every image.

    An image that cannot be read is skipped and recorded in ``unreadable`` (when given; else
    it is an error). ``on_record(record, path)`` receives each image's result record."""
    run = FaithfulnessRun(model, options)
    run._pipeline = pipeline
    unreadable = unreadable if unreadable is not None else _Strict()
    for path in images:
        img = unreadable.load(path)
        if img is not None:
            img_gt = gt.get(osp.basename(path)) if gt is not None else None
            record = run.run_image(img, path, img_gt)
            if on_record is not None:
                on_record(record, path)
        if progress is not None:
            progress()
    return run.table


class _Strict(UnreadableImages):
    """Unreadable images are errors (``evaluate`` without a skip list)."""

    def load(self, path: str):
        from .inference import load_image
        return load_image(path)


__all__ = ['COLUMNS', 'FaithfulnessOptions', 'FaithfulnessRun', 'FaithfulnessTable',
           'DetectionScorer', 'GroundTruth', 'evaluate', 'find_dataset', 'matching_gt',
           'matching_index']
