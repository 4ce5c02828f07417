"""``--method auto`` and ``--target-layers auto``: the recommended explainer per model family.

The family is read from the model's classes (never from a config file name):

* ``mmyolo_one_stage``: an MMYOLO detector (``YOLODetector``: YOLOv5, YOLOv8, RTMDet...);
* ``detr``: an MMDet ``DetectionTransformer`` (DETR, Deformable DETR, DINO...);
* ``two_stage``: an MMDet ``TwoStageDetector`` (Faster / Mask / Cascade R-CNN...);
* ``dense_one_stage``: any other MMDet ``SingleStageDetector`` (RetinaNet, FCOS, ATSS...);
* ``other``: anything else with a ``backbone``.

The layer set is read from the model's modules: the backbone stages that feed the neck (the
backbone's ``out_indices`` into its ``layers`` / ``res_layers`` / ``stages``, from the neck's
``start_level`` on) plus ``neck``.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from torch import nn

FAMILIES = ('mmyolo_one_stage', 'dense_one_stage', 'two_stage', 'detr', 'other')

#: Per family: (method, which layers, fusion, pool stride). ``which layers``: ``stages+neck``
#: (the backbone stages feeding the neck, then the neck), ``neck``, or ``none`` (a black-box
#: method). Measured on the COCO YOLOv5-n and the shared photos (benchmarks/bench_fused_cam.py,
#: the README's CAM section); the other families follow the same reasoning (see the README).
RECOMMENDED: Dict[str, tuple] = {
    'mmyolo_one_stage': ('layercam', 'stages+neck', 'max', 16),
    'dense_one_stage': ('layercam', 'stages+neck', 'max', 16),
    'two_stage': ('layercam', 'stages+neck', 'max', 16),
    'detr': ('drise', 'none', 'mean', 0),
    'other': ('layercam', 'stages+neck', 'max', 16),
}
#: ``--target-layers auto`` for a gradient method the user named, per family.
AUTO_LAYERS: Dict[str, str] = {
    'mmyolo_one_stage': 'stages+neck',
    'dense_one_stage': 'stages+neck',
    'two_stage': 'stages+neck',
    'detr': 'neck',
    'other': 'stages+neck',
}


@dataclass
class Recommendation:
    """What ``auto`` resolved to for one model."""
    family: str
    method: str
    layers: List[str] = field(default_factory=list)
    fusion: str = 'mean'
    pool_stride: int = 0

    def describe(self) -> str:
        """One line: ``auto (mmyolo_one_stage): layercam at backbone.stage2, ... (fused: max,
        pooled on 16 px cells)``."""
        where = (f' at {", ".join(self.layers)}' if self.layers else '')
        fused = ''
        if len(self.layers) > 1:
            pooled = f', pooled on {self.pool_stride} px cells' if self.pool_stride > 1 else ''
            fused = f' (fused: {self.fusion}{pooled})'
        return f'auto ({self.family}): {self.method or "(your method)"}{where}{fused}'

    def as_dict(self) -> dict:
        return dict(family=self.family, method=self.method, layers=list(self.layers),
                    fusion=self.fusion, pool_stride=self.pool_stride)


def model_family(model: nn.Module) -> str:
    """One of :data:`FAMILIES`, from the model's classes."""
    if type(model).__module__.split('.')[0] == 'mmyolo':
        return 'mmyolo_one_stage'
    try:
        from mmdet.models.detectors import (
            DetectionTransformer,
            SingleStageDetector,
            TwoStageDetector,
        )
    except ImportError:  # pragma: no cover - mmdet is a requirement
        return 'other'
    if isinstance(model, DetectionTransformer):
        return 'detr'
    if isinstance(model, TwoStageDetector):
        return 'two_stage'
    if isinstance(model, SingleStageDetector):
        if any(type(m).__module__.split('.')[0] == 'mmyolo' for m in model.children()):
            return 'mmyolo_one_stage'
        return 'dense_one_stage'
    return 'other'


def backbone_stages(model: nn.Module) -> List[str]:
    """Dotted names of the backbone stages whose outputs the neck takes, shallow to deep
    (``backbone.stage2`` ... for CSPDarknet, ``backbone.layer2`` ... for ResNet,
    ``backbone.stages.1`` ... for Swin / ConvNeXt); ``[]`` when the backbone does not say."""
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        return []
    out_indices = getattr(backbone, 'out_indices', None)
    names: Optional[List[str]] = None
    for attr in ('layers', 'res_layers'):
        value = getattr(backbone, attr, None)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            names = [f'backbone.{v}' for v in value]
            break
    if names is None and isinstance(getattr(backbone, 'stages', None), nn.ModuleList):
        names = [f'backbone.stages.{i}' for i in range(len(backbone.stages))]
    if names is None or out_indices is None:
        return []
    neck = getattr(model, 'neck', None)
    start = int(getattr(neck, 'start_level', 0) or 0)  # MMDet FPN: levels below it unused
    picked = []
    for i in list(out_indices)[start:]:
        i = int(i)
        if -len(names) <= i < len(names):
            name = names[i]
            module = _get(model, name)
            if module is not None and name not in picked:
                picked.append(name)
    return picked


def _get(model: nn.Module, dotted: str) -> Optional[nn.Module]:
    module: Optional[nn.Module] = model
    for part in dotted.split('.'):
        module = getattr(module, part, None) if module is not None else None
    return module if isinstance(module, nn.Module) else None


def _layers(model: nn.Module, which: str) -> List[str]:
    if which == 'none':
        return []
    has_neck = isinstance(getattr(model, 'neck', None), nn.Module)
    neck = ['neck'] if has_neck else []
    if which == 'neck' and neck:
        return neck
    stages = backbone_stages(model)
    layers = stages + neck
    if not layers:
        layers = ['backbone'] if isinstance(getattr(model, 'backbone', None), nn.Module) else []
    return layers


def auto_layers(model: nn.Module, family: Optional[str] = None) -> List[str]:
    """``--target-layers auto``: the recommended layer set of the model's family."""
    return _layers(model, AUTO_LAYERS[family or model_family(model)])


def recommend(model: nn.Module) -> Recommendation:
    """``--method auto``: the recommended method, layers and fusion for the model's family."""
    family = model_family(model)
    method, which, fusion, pool_stride = RECOMMENDED[family]
    return Recommendation(family, method, _layers(model, which), fusion, pool_stride)


__all__ = ['FAMILIES', 'RECOMMENDED', 'AUTO_LAYERS', 'Recommendation', 'model_family',
           'backbone_stages', 'auto_layers', 'recommend']
