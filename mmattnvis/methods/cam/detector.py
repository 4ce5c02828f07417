"""The detector as a ``grad-cam`` model (``images -> [pred_instances]``), the targets that score
one detection in its output, and the one no-grad pass that finds the detections to explain."""
from dataclasses import dataclass
from typing import Any, Callable, List, Sequence

import numpy as np
import torch
from torch import nn

from ...compat.mmdet_dense_head import DenseHeadsKeepGraph
from ...structures.boxes import BoxLike, box_iou
from ...structures.detection import Detection
from .guards import EvalMode


class DetectorFunction(nn.Module):
    """``images (B, 3, H, W) -> [pred_instances] * B`` for one image's metainfo.

    Args:
        detector: An MMDet / MMYOLO detector (``predict(inputs, data_samples, rescale)``).
        data_sample: The preprocessed data sample of the image (its metainfo is copied for every
            batch item). Boxes come back in original-image pixels.
    """

    def __init__(self, detector: nn.Module, data_sample: Any) -> None:
        super().__init__()
        self.detector = detector
        self.metainfo = dict(data_sample.metainfo)
        self._keep_graph = DenseHeadsKeepGraph(detector)

    def forward(self, inputs: torch.Tensor) -> list:
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=self.metainfo) for _ in range(inputs.shape[0])]
        if not inputs.requires_grad and torch.is_grad_enabled():
            inputs = inputs.requires_grad_(True)
        with self._keep_graph:
            results = self.detector.predict(  # type: ignore[operator]  # nn.Module attributes are typed Tensor | Module
                inputs, samples, rescale=True)
        return [r.pred_instances for r in results]


class DetectionTarget:
    """Scores one detection in a detector's output (a ``grad-cam`` target).

    Args:
        bbox: ``(x1, y1, x2, y2)`` of the detection to explain.
        label: Its class.
        use_iou: Score = max over predictions of the same class of IoU x class score
            (D-RISE's similarity with the class score as the class term). Without it, the class
            score of the same-class prediction that overlaps the box most.

    The IoU factor selects and weighs the matching prediction but carries no gradient: at a
    perfect match (the unperturbed image) IoU has a kink, so its gradient would depend on
    rounding (e.g. on the batch size). Gradients flow through the class score.
    """

    def __init__(self, bbox: BoxLike, label: int, use_iou: bool = True) -> None:
        self.bbox = torch.as_tensor(np.asarray(bbox, dtype=np.float32))
        self.label = int(label)
        self.use_iou = use_iou

    def same_class(self, pred_instances):
        """``(same-class mask, their boxes, their IoU with the box)``; ``None`` without one."""
        same = pred_instances.labels == self.label
        if not bool(same.any()):
            return None
        boxes = pred_instances.bboxes[same]
        return same, boxes, box_iou(self.bbox.to(boxes), boxes).detach()

    def __call__(self, pred_instances) -> torch.Tensor:
        scores = pred_instances.scores
        match = self.same_class(pred_instances)
        if match is None:
            return scores.sum() * 0.0
        same, _, ious = match
        if self.use_iou:
            return (ious * scores[same]).max()
        best = int(ious.argmax())
        return scores[same][best] * (ious[best] > 0).to(scores.dtype)


class SumTarget:
    """The sum of several targets (the image-level map of all kept detections)."""

    def __init__(self, targets: Sequence[Callable]) -> None:
        self.targets = list(targets)

    def __call__(self, output) -> torch.Tensor:
        return sum(t(output) for t in self.targets)


def select_detections(pred_instances, score_thr: float, topk: int,
                      image: int = 0) -> List[Detection]:
    """Predictions above ``score_thr``, highest score first, at most ``topk`` (``<=0``: all),
    as :class:`Detection` s whose ``query`` is the prediction's index."""
    scores = pred_instances.scores.detach().cpu().numpy()
    order = [int(i) for i in np.argsort(-scores, kind='stable') if scores[i] > score_thr]
    if topk > 0:
        order = order[:topk]
    boxes = pred_instances.bboxes.detach().cpu().numpy()
    labels = pred_instances.labels.detach().cpu().numpy()
    return [Detection(image, i, i, int(labels[i]), float(scores[i]),
                      boxes[i].astype(np.float32)) for i in order]


@dataclass
class DetectedBatch:
    """A batch preprocessed once and its kept detections, shared by every CAM method.

    Attributes:
        inputs: The preprocessed ``(B, 3, H, W)`` batch.
        samples: Per image, the data sample with ``pred_instances`` (original-image boxes).
        detections: Per image, the kept detections (see :func:`select_detections`).
    """
    inputs: torch.Tensor
    samples: list
    detections: List[List[Detection]]


def detect(model: nn.Module, data: dict, score_thr: float = 0.3,
           topk: int = 10) -> DetectedBatch:
    """Preprocess a prepared batch and find the detections to explain (one no-grad pass)."""
    with EvalMode(model), torch.no_grad():
        processed = model.data_preprocessor(data, False)  # type: ignore[operator]
        inputs = processed['inputs']
        samples, dets = [], []
        for b, sample in enumerate(processed['data_samples']):
            preds = DetectorFunction(model, sample)(inputs[b:b + 1])[0]
            sample = sample.clone()
            sample.pred_instances = preds
            samples.append(sample)
            dets.append(select_detections(preds, score_thr, topk, image=b))
    return DetectedBatch(inputs, samples, dets)
