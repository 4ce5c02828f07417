"""Grad-CAM family maps per detection, on top of the ``grad-cam`` package.

``grad-cam`` computes a CAM for ``model(input_tensor)`` and one target callable per batch item.
Detectors do not fit that mould as they are, so this package supplies the three pieces it needs:

* :class:`DetectorFunction` turns an MMDet / MMYOLO detector and one image's metainfo into a
  module ``images -> [pred_instances]`` that keeps the graph from the image to the scores and boxes;
* :class:`DetectionTarget` scores a detection in such an output: the class score of the best
  matching prediction, optionally times its IoU with the original box (the D-RISE similarity);
* reshape transforms for multi-level (FPN tuple, or a shared head called once per level) and
  token outputs, an activation/gradient recorder that understands them, and an ablation layer
  for FPN tuples, so every ``grad-cam`` method works on ``neck`` or a ViT block as it is.

All detections of an image are explained from one forward pass: the gradient of each detection's
target is taken with respect to the target layers' outputs only, so each backward pass runs through
the head alone (AblationCAM keeps grad-cam's batch of copies). Parameters are frozen while a
map is computed, so no ``.grad`` is left on the model; every hook and any swapped-in ablation
layer is removed afterwards, also when an exception is raised.

Modules, by role: :mod:`.methods` (the ``--method`` table), :mod:`.reshape` (layer outputs ->
maps), :mod:`.recorder` (activations and gradients), :mod:`.detector` (the detector as a function,
targets, detection), :mod:`.guards` (model state restored on exit) and :mod:`.detection_cam`
(:class:`DetectionCAM` and its result). Patches of MMDet and grad-cam internals are in
:mod:`mmattnvis.compat`.
"""
from .detection_cam import CAMResult, DetectionCAM, normalize_in_box
from .detector import (
    DetectedBatch,
    DetectionTarget,
    DetectorFunction,
    SumTarget,
    detect,
    select_detections,
)
from .fusion import FUSIONS, LayerFusion, fuse_layer_maps
from .guards import EvalMode, FrozenParams, RestoredLayers
from .methods import CAM_METHODS, cam_class, principal_projection
from .recorder import LayerNotOnScorePath, MultiLevelActivationsAndGradients, ablation_layer_class
from .reshape import MultiLevelReshape, TokenReshape

__all__ = [
    'CAM_METHODS', 'cam_class', 'principal_projection', 'MultiLevelReshape', 'TokenReshape',
    'MultiLevelActivationsAndGradients', 'LayerNotOnScorePath', 'ablation_layer_class',
    'DetectorFunction', 'DetectionTarget', 'SumTarget', 'DetectedBatch', 'detect',
    'select_detections', 'normalize_in_box', 'CAMResult', 'DetectionCAM', 'EvalMode',
    'FrozenParams', 'RestoredLayers', 'FUSIONS', 'LayerFusion', 'fuse_layer_maps'
]
