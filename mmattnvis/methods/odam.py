"""ODAM: instance-specific gradient x activation maps per detection (Zhao et al., ICLR 2023).

For a detection and one of its predicted attributes ``y`` (its class score, or one box
coordinate), ODAM's map at a feature level is ``ReLU(sum_k dy/dA_k * A_k)``: the gradient of
``y`` w.r.t. the feature map, multiplied element-wise with the activations and summed over
channels, *per location* (no channel-wise pooling of the gradient, unlike Grad-CAM, so other
objects of the same class do not light up).

The gradient path is the CAM one (:class:`~.cam.DetectionCAM`: MMDet dense heads keep their
graph through ``predict_by_feat``, parameters frozen, hooks removed on exit). Levels of a
multi-level layer (an FPN tuple) are each summed over channels, brought to the finest grid by
nearest-neighbour upsampling (which commutes with the element-wise product, so the result is
``sum_l up(sum_k g_lk * A_lk)``), added, then ReLU'd and min-max normalised.
"""
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from ..registry import METHODS
from ..structures.boxes import BoxLike
from ..structures.detection import Detection
from ..utils.errors import UserInputError
from .cam import DetectionCAM, DetectionTarget, MultiLevelReshape

#: ``--odam-attribute`` values: the class score or one box coordinate.
ODAM_ATTRIBUTES = ('score', 'x1', 'y1', 'x2', 'y2')


def NearestLevels() -> MultiLevelReshape:  # noqa: N802 (kept as the name tests and users use)
    """Levels merged on the finest grid by nearest-neighbour upsampling: each fine cell holds its
    coarse cell's value, so the per-level ``sum_k g_k * A_k`` add up exactly."""
    return MultiLevelReshape('nearest')


def odam_map(activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """``(B, C, H, W)`` activations and gradients -> ``(B, H, W)`` ``sum_k g_k * A_k`` (before
    the ReLU, which the CAM machinery applies)."""
    return (np.asarray(grads) * np.asarray(activations)).sum(axis=1)


def _odam_class():
    from pytorch_grad_cam.base_cam import BaseCAM

    class ODAMCam(BaseCAM):
        """``grad-cam`` form of ODAM: element-wise gradient x activation, summed over
        channels per location (ReLU and scaling by ``BaseCAM``)."""

        def get_cam_image(self, input_tensor, target_layer, target_category, activations,
                          grads, eigen_smooth):
            return odam_map(activations, grads)

    return ODAMCam


class BoxCoordinateTarget(DetectionTarget):
    """One coordinate (``x1 y1 x2 y2`` = 0..3, original-image pixels) of the same-class
    prediction that overlaps the detection most (matched as :class:`DetectionTarget` does)."""

    def __init__(self, bbox: BoxLike, label: int, index: int) -> None:
        super().__init__(bbox, label, use_iou=False)
        self.index = int(index)

    def __call__(self, pred_instances) -> torch.Tensor:
        scores = pred_instances.scores
        match = self.same_class(pred_instances)
        if match is None:
            return scores.sum() * 0.0
        _, boxes, ious = match
        # ``scores.sum() * 0`` keeps the target in the graph where a head detaches its boxes.
        return boxes[int(ious.argmax()), self.index] + scores.sum() * 0.0


@METHODS.register_module(name='odam')
class ODAM(DetectionCAM):
    """ODAM maps per kept detection (the CAM contract: ``explain`` -> ``CAMResult``).

    Args:
        target_layers: Dotted module names (``neck``, ``backbone.stage4``...).
        attribute: Which predicted attribute is explained: ``score`` (the detection's class
            score, no IoU factor) or a box coordinate ``x1``, ``y1``, ``x2``, ``y2``.
        batch_size: Image copies (detections) per forward / backward pass.
        norm_in_bbox: Renormalise each map inside its box.
        fusion: How the maps of several target layers are fused (``mean``, ``max``,
            ``gmean``; see :mod:`~.cam.fusion`).
    """

    name = 'odam'

    def __init__(self, target_layers: Sequence[str] = ('neck', ), attribute: str = 'score',
                 batch_size: int = 8, norm_in_bbox: bool = False,
                 reshape_transform: Optional[Callable] = None, fusion: str = 'mean',
                 keep_layer_maps: bool = False, pool_stride: int = 0) -> None:
        if attribute not in ODAM_ATTRIBUTES:
            raise UserInputError(f'unknown ODAM attribute {attribute!r}; choose '
                                 f'{", ".join(ODAM_ATTRIBUTES)}')
        super().__init__('hirescam', target_layers, use_iou=False,
                         reshape_transform=reshape_transform or NearestLevels(),
                         batch_size=batch_size, norm_in_bbox=norm_in_bbox, fusion=fusion,
                         keep_layer_maps=keep_layer_maps, pool_stride=pool_stride)
        self.cam_cls = _odam_class()
        self.attribute = attribute
        self.method = 'odam' if attribute == 'score' else f'odam-{attribute}'

    def _targets(self, dets: List[Detection]) -> List[Callable]:
        if self.attribute == 'score':
            return [DetectionTarget(d.bbox, d.label, use_iou=False) for d in dets]
        index = ODAM_ATTRIBUTES.index(self.attribute) - 1
        return [BoxCoordinateTarget(d.bbox, d.label, index) for d in dets]


__all__ = ['ODAM', 'ODAM_ATTRIBUTES', 'NearestLevels', 'odam_map', 'BoxCoordinateTarget']
