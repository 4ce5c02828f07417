"""DetectionCAM: one ``grad-cam`` method, one map per kept detection plus an image-level map."""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ...capture.names import resolve_module
from ...compat.grad_cam import replace_recorder
from ...registry import METHODS
from ...render.geometry import ImageGeometry, align_to_image, box_slices
from ...structures import Map2D
from ...structures.boxes import BoxLike
from ...structures.detection import Detection
from ...utils.errors import UserInputError
from ..base import Explainer
from .detector import DetectedBatch, DetectionTarget, DetectorFunction, SumTarget, detect
from .fusion import FUSIONS, LayerFusion
from .guards import EvalMode, FrozenParams, RestoredLayers
from .methods import cam_class
from .recorder import (
    LayerNotOnScorePath,
    MultiLevelActivationsAndGradients,
    NotSpatialLayer,
    ablation_layer_class,
    spatial_layers,
)
from .reshape import MultiLevelReshape


def normalize_in_box(saliency: np.ndarray, bbox: BoxLike) -> np.ndarray:
    """Zero the map outside ``bbox`` and min-max normalise it inside (``--norm-in-bbox``)."""
    out = np.zeros_like(saliency, dtype=np.float32)
    rs, cs = box_slices(bbox, saliency.shape)
    inside = saliency[rs, cs].astype(np.float32)
    if inside.size:
        lo, hi = float(inside.min()), float(inside.max())
        out[rs, cs] = (inside - lo) / (hi - lo) if hi > lo else 0.0
    return out


@dataclass
class CAMResult:
    """Per image: the test-step-like samples, the kept detections, one aligned map per detection
    (original-image grid, in [0, 1]) and the image-level map."""
    samples: list
    detections: List[List[Detection]]
    maps: List[List[Map2D]]
    image_maps: List[Map2D] = field(default_factory=list)
    #: With ``keep_layer_maps``: per image, per detection, ``{layer name: aligned map}`` (each
    #: target layer's own normalised map, before fusion).
    layer_maps: List[List[Dict[str, np.ndarray]]] = field(default_factory=list)


@METHODS.register_module(name='cam')
class DetectionCAM(Explainer):
    """One ``grad-cam`` method, one map per kept detection plus an image-level map.

    Args:
        method: A key of :data:`CAM_METHODS` (``gradcam``, ``gradcam++``, ``eigencam``...).
        target_layers: Dotted module names (``neck``, ``backbone.stage4``, ``neck.out_layers[2]``).
        use_iou: Targets use IoU x class score (see :class:`DetectionTarget`).
        reshape_transform: Turns a layer output into ``(B, C, H, W)``; default
            :class:`MultiLevelReshape` (tensors, FPN tuples, shared heads).
        batch_size: Copies of the image per forward/backward pass (detections per batch).
        ablation_batch_size: AblationCAM's batch of ablated copies.
        norm_in_bbox: Renormalise each detection's map inside its box.
        one_forward: One forward of the image and one target-layer-only gradient per detection
            (default); ``False``: a forward/backward over a batch of copies, as grad-cam does
            (AblationCAM always works that way).
        fusion: How the maps of several target layers are fused (:data:`~.fusion.FUSIONS`):
            each layer's map is normalised, then ``mean`` (grad-cam's rule), ``max`` or
            ``gmean``; all layers come from the same forward and the same backward.
        pool_stride: With several layers, pool each layer's map on cells of this many input
            pixels before fusing (0: off; see :mod:`~.fusion`).
        keep_layer_maps: Also return each layer's own map (:attr:`CAMResult.layer_maps`).
    """

    name = 'cam'

    def __init__(self, method: str = 'gradcam', target_layers: Sequence[str] = ('neck', ),
                 use_iou: bool = True, reshape_transform: Optional[Callable] = None,
                 batch_size: int = 8, ablation_batch_size: int = 32,
                 norm_in_bbox: bool = False, one_forward: bool = True,
                 fusion: str = 'mean', keep_layer_maps: bool = False,
                 pool_stride: int = 0) -> None:
        self.cam_cls = cam_class(method)
        if fusion not in FUSIONS:
            raise UserInputError(f'unknown fusion {fusion!r}; choose {", ".join(FUSIONS)}')
        self.fusion = fusion
        self.keep_layer_maps = keep_layer_maps
        self.pool_stride = max(0, int(pool_stride))
        self.method = method
        self.target_layers = list(target_layers)
        if not self.target_layers:
            raise UserInputError('CAM needs at least one target layer')
        self.use_iou = use_iou
        self.reshape_transform = reshape_transform or MultiLevelReshape()
        self.batch_size = max(1, int(batch_size))
        self.ablation_batch_size = max(1, int(ablation_batch_size))
        self.norm_in_bbox = norm_in_bbox
        self.one_forward = one_forward

    def _build(self, fn: DetectorFunction, layers: List[nn.Module]):
        kwargs: Dict[str, Any] = dict(reshape_transform=self.reshape_transform)
        if self.cam_cls.__name__ == 'AblationCAM':
            kwargs.update(ablation_layer=ablation_layer_class()(),
                          batch_size=self.ablation_batch_size)
        cam = self.cam_cls(fn, layers, **kwargs)
        recorder = replace_recorder(cam, MultiLevelActivationsAndGradients(
            fn, layers, self.reshape_transform))
        recorder.require_gradients = bool(getattr(cam, 'uses_gradients', False))
        # this instance only; one layer is never pooled (single-layer maps stay as they were)
        cam.aggregate_multi_layers = LayerFusion(
            self.fusion, self.pool_stride if len(layers) > 1 else 0)
        return cam

    def explain(self, model: nn.Module, data: Optional[dict] = None, score_thr: float = 0.3,
                topk: int = 10, detected: Optional['DetectedBatch'] = None) -> CAMResult:
        """Explain every kept detection of every image of a prepared batch.

        Args:
            model: The detector.
            data: A batch from :func:`mmattnvis.apis.prepare_batch`.
            score_thr: Keep predictions above this score.
            topk: At most this many detections per image (``<= 0``: all).
            detected: The result of :func:`detect` for this batch, when several methods explain
                the same detections (then ``data``, ``score_thr`` and ``topk`` are not used).
        """
        layers = [resolve_module(model, name) for name in self.target_layers]
        if detected is None:
            detected = detect(model, data, score_thr, topk)  # type: ignore[arg-type]
        result = CAMResult(detected.samples, detected.detections, [], [])
        with EvalMode(model):
            for b, (sample, dets) in enumerate(zip(detected.samples, detected.detections)):
                maps, image_map, per_layer = self._explain_image(
                    DetectorFunction(model, sample), layers, detected.inputs[b:b + 1], dets,
                    ImageGeometry.from_metainfo(sample.metainfo))
                result.maps.append(maps)
                result.image_maps.append(image_map)
                result.layer_maps.append(per_layer)
        return result

    def _targets(self, dets: List[Detection]) -> List[Callable]:
        """One target callable per detection (subclasses choose other attributes)."""
        return [DetectionTarget(d.bbox, d.label, self.use_iou) for d in dets]

    def _explain_image(self, fn: DetectorFunction, layers: List[nn.Module], image: torch.Tensor,
                       dets: List[Detection], geom: ImageGeometry):
        if not dets:
            return [], None, []
        targets = self._targets(dets)
        targets.append(SumTarget(list(targets)))
        raw: List[np.ndarray] = []
        with FrozenParams(fn), RestoredLayers(fn, layers):
            cam = self._build(fn, layers)
            try:
                if self.one_forward and self.cam_cls.__name__ != 'AblationCAM':
                    raw = self._maps_one_forward(cam, image.detach(), targets)
                else:
                    for start in range(0, len(targets), self.batch_size):
                        chunk = targets[start:start + self.batch_size]
                        batch = image.detach().repeat(len(chunk), 1, 1, 1)
                        raw.extend(list(cam(input_tensor=batch, targets=chunk)))
            except LayerNotOnScorePath as err:
                raise UserInputError(self._off_path_message(err, dets)) from None
            except NotSpatialLayer as err:
                cam.activations_and_grads.release()
                raise UserInputError(self._not_spatial_message(err, fn, image)) from None
            finally:
                cam.activations_and_grads.release()
        aligned = [align_to_image(m, geom) for m in raw]
        per_layer = self._layer_maps(cam.aggregate_multi_layers, len(dets), geom)
        maps = []
        fused = dict(fusion=self.fusion, pool_stride=self.pool_stride) if len(layers) > 1 else {}
        for d, m in zip(dets, aligned[:-1]):
            if self.norm_in_bbox:
                m = normalize_in_box(m, d.bbox)
            maps.append(Map2D(m, self.method, dict(method=self.method, rank=d.rank,
                                                   aligned=True, **fused)))
        image_map = Map2D(aligned[-1], f'{self.method} (image)',
                          dict(method=self.method, aligned=True, **fused))
        return maps, image_map, per_layer

    def _layer_maps(self, fusion: LayerFusion, n: int,
                    geom: ImageGeometry) -> List[Dict[str, np.ndarray]]:
        """Per detection, each target layer's aligned map (``keep_layer_maps``; else ``[]``)."""
        if not self.keep_layer_maps:
            return []
        per_layer = fusion.layer_maps()
        out = []
        for i in range(n):
            # EigenCAM computes one map for all targets: item 0 stands for every detection.
            out.append({name: align_to_image(m[i if len(m) > i else 0], geom)
                        for name, m in zip(self.target_layers, per_layer)})
        return out


    def _maps_one_forward(self, cam, image: torch.Tensor,
                          targets: List[Callable]) -> List[np.ndarray]:
        """One forward of the image, then one gradient per target with respect to the target
        layers' outputs only (the backward stops there), fed to grad-cam's per-layer CAM.

        Equal to the batch of copies (items are independent in eval mode) at the cost of one
        forward instead of one per detection, and head-only backward passes.
        """
        rec = cam.activations_and_grads
        n = len(targets)
        if not cam.uses_gradients:  # EigenCAM: the same map for every target, computed once
            with torch.no_grad():
                rec(image)
            one = cam.aggregate_multi_layers(cam.compute_cam_per_layer(image, targets[:1],
                                                                       False))[0]
            return [one] * n
        outputs = rec(image)
        acts = [list(a) for a in rec._acts]
        for index, levels in enumerate(acts):
            if not levels:
                raise LayerNotOnScorePath(index, ran=False)
        flat = [t for a in acts for t in a]
        scores = outputs[0].scores
        if not (scores.requires_grad and len(scores)):
            raise LayerNotOnScorePath(0, ran=True)
        on_path = torch.autograd.grad(scores.sum(), flat, retain_graph=True, allow_unused=True)
        k = 0
        for index, levels in enumerate(acts):
            # no path from the layer to the scores, or only through the concatenation with the
            # boxes that NMS does (then the gradient is exactly zero)
            if all(g is None or not bool(g.any()) for g in on_path[k:k + len(levels)]):
                raise LayerNotOnScorePath(index, ran=True)
            k += len(levels)
        per_target = []
        for target in targets:
            score = target(outputs[0])
            grads = (torch.autograd.grad(score, flat, retain_graph=True, allow_unused=True)
                     if score.requires_grad else [None] * len(flat))
            per_target.append([torch.zeros_like(t) if g is None else g
                               for g, t in zip(grads, flat)])
        k = 0
        for li, levels in enumerate(acts):
            rec._acts[li] = [t.detach().expand(n, *t.shape[1:]) for t in levels]
            rec._grads[li] = {lvl: torch.cat([g[k + lvl] for g in per_target])
                              for lvl in range(len(levels))}
            k += len(levels)
        batch = image.expand(n, *image.shape[1:])
        return list(cam.aggregate_multi_layers(cam.compute_cam_per_layer(batch, targets,
                                                                         False)))

    def _not_spatial_message(self, err: NotSpatialLayer, fn: DetectorFunction,
                             image: torch.Tensor) -> str:
        """Name the layer, what it outputs, and the layers of this model that do give maps."""
        name = self.target_layers[err.index]
        shape = ', '.join('x'.join(str(v) for v in s) for s in err.shapes[:2])
        ok = spatial_layers(fn.detector, lambda: fn(image.detach()), image.shape,
                            self.reshape_transform)
        top = [n for n in ok if '.' not in n]
        # deeper layers, the last ones (nearest the head) first
        shown = top + [n for n in ok if '.' in n][::-1][:max(0, 6 - len(top))]
        more = ', ...' if len(shown) < len(ok) else ''
        hint = ''
        if 'decoder' in name.split('.')[0]:
            deformable = any('Deformable' in type(m).__name__ for m in fn.detector.modules())
            mode = 'deformable (sampling points)' if deformable else \
                'relevance (gradient-weighted attention) or --mode decoder'
            hint = ('; per-query maps of a DETR decoder: mmattnvis attn IMG CONFIG CHECKPOINT '
                    f'--mode {mode}, or --method drise here')
        return (f'target layer {name} outputs {shape} (tokens, no H x W grid), so '
                f'{self.method} has no map to draw; layers of this model with maps: '
                f'{", ".join(shown) or "none found"}{more}{hint}')

    def _off_path_message(self, err: LayerNotOnScorePath, dets: List[Detection]) -> str:
        name = self.target_layers[err.index]
        if not err.ran:
            return (f'target layer {name} did not run during inference; choose a layer on the '
                    'test path (see tools/featmap_vis.py --preview-model)')
        score = 'class score' if not self.use_iou else 'score (IoU x class score)'
        return (f'target layer {name} is not used for the detections\' {score}: no gradient '
                f'of it reaches the layer ({self.method} needs one); choose a layer the score '
                'depends on, e.g. neck or a backbone stage, or a gradient-free method (eigencam)')
