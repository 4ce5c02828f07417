"""Grad-CAM family maps per detection, on top of the ``grad-cam`` package.

``grad-cam`` computes a CAM for ``model(input_tensor)`` and one target callable per batch item.
Detectors do not fit that mould as they are, so this module supplies the three pieces it needs:

* :class:`DetectorFunction` turns an MMDet / MMYOLO detector and one image's metainfo into a
  module ``images -> [pred_instances]`` that keeps the graph from the image to the scores and boxes;
* :class:`DetectionTarget` scores a detection in such an output: the class score of the best
  matching prediction, optionally times its IoU with the original box (the D-RISE similarity);
* reshape transforms for multi-level (FPN tuple, or a shared head called once per level) and
  token outputs, an activation/gradient recorder that understands them, and an ablation layer
  for FPN tuples, so every ``grad-cam`` method works on ``neck`` or a ViT block as it is.

All detections of an image are explained from one forward pass: the gradient of each detection's
target is taken with respect to the target layers' outputs only, so each backward pass runs through
the head alone (AblationCAM keeps grad-cam's batch of copies). Parameters are frozen while a map is computed,
so no ``.grad`` is left on the model; every hook and any swapped-in ablation layer is removed
afterwards, also when an exception is raised.
"""
import functools
import math
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..capture.names import resolve_module
from ..render.geometry import ImageGeometry, align_to_image, box_slices
from ..utils.errors import UserInputError
from ..structures.detection import Detection
from .base import Map2D, MapMethod

#: ``--method`` names and the ``grad-cam`` classes they stand for. ``eigencam`` and
#: ``eigengradcam`` are grad-cam's classes with the principal component's sign fixed (see
#: :func:`_sign_corrected`); ``eigencam-unsigned`` / ``eigengradcam-unsigned`` are the originals.
CAM_METHODS = {
    'gradcam': 'GradCAM',
    'gradcam++': 'GradCAMPlusPlus',
    'xgradcam': 'XGradCAM',
    'eigencam': 'EigenCAM',
    'eigengradcam': 'EigenGradCAM',
    'segeigencam': 'SegEigenCAM',
    'layercam': 'LayerCAM',
    'hirescam': 'HiResCAM',
    'ablationcam': 'AblationCAM',
    'randomcam': 'RandomCAM',
    'eigencam-unsigned': 'EigenCAM',
    'eigengradcam-unsigned': 'EigenGradCAM',
}
_SIGN_CORRECTED = ('eigencam', 'eigengradcam')


def _squash(name: str) -> str:
    return name.lower().replace('_', '').replace('-', '')


#: Spellings users type (any case, with or without ``-`` / ``_``) -> :data:`CAM_METHODS` keys.
_SPELLINGS = {_squash(k): k for k in CAM_METHODS}
_SPELLINGS.update(gradcamplusplus='gradcam++', gradcampp='gradcam++')


@functools.lru_cache(maxsize=None)
def _sign_corrected(base: type) -> type:
    """``base`` (EigenCAM or EigenGradCAM) with the sign of its principal component fixed.

    An SVD's first component is defined only up to sign, so grad-cam's EigenCAM can light the
    background instead of the objects. The subclass orients the projection so that its
    larger-magnitude extreme is positive, with grad-cam's own
    ``get_2d_projection_with_sign_correction`` (Seg-Eigen-CAM, Chung & Ying 2025, Eq. 13).
    One class per base, so ``cam_class`` returns the same class on every call.
    """
    from pytorch_grad_cam import EigenGradCAM
    weigh_by_grads = issubclass(base, EigenGradCAM)

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads,
                      eigen_smooth):
        return principal_projection(grads * activations if weigh_by_grads else activations)

    return type(f'SignCorrected{base.__name__}', (base, ),
                dict(get_cam_image=get_cam_image, __doc__=_sign_corrected.__doc__))


def principal_projection(batch: np.ndarray) -> np.ndarray:
    """``(B, C, H, W)`` -> ``(B, H, W)``: each item projected on the first principal component of
    its channels, oriented so that the larger-magnitude extreme is positive.

    The same as grad-cam's ``get_2d_projection_with_sign_correction`` but with the economy SVD
    (``full_matrices=False``): only the first right-singular vector is used, and the full
    ``HW x HW`` left factor made one 80x80 map take ~20 s.
    """
    batch = np.nan_to_num(np.asarray(batch, dtype=np.float32), nan=0.0)
    out = []
    for act in batch:
        x = act.reshape(act.shape[0], -1).T
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        proj = (x @ vt[0]).reshape(act.shape[1:])
        out.append(-proj if abs(proj.min()) > abs(proj.max()) else proj)
    return np.float32(out)


def cam_class(method: str):
    """The ``grad-cam`` class for a ``--method`` name (one-line error for an unknown one)."""
    key = _SPELLINGS.get(_squash(method))
    if key is None:
        raise UserInputError(f'unknown CAM method {method!r}; choose {", ".join(CAM_METHODS)}')
    import pytorch_grad_cam
    cls = getattr(pytorch_grad_cam, CAM_METHODS[key])
    return _sign_corrected(cls) if key in _SIGN_CORRECTED else cls


# ----------------------------------------------------------------------------- reshape transforms
def _tensors(obj: Any) -> List[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for t in obj if isinstance(t, torch.Tensor)]
    return []


class MultiLevelReshape:
    """Several ``(B, C_i, H_i, W_i)`` maps -> one ``(B, sum C_i, H, W)`` on the finest grid.

    Each level is resized to the largest ``H x W`` among them (``mode``: ``bilinear`` by
    default; ``nearest`` keeps a per-level sum exact, as ODAM needs) and the levels are
    concatenated along channels, so a CAM weighs every level's channels together. A single
    4-D tensor passes through unchanged.
    """

    def __init__(self, mode: str = 'bilinear') -> None:
        self.mode = mode

    def __call__(self, x: Any) -> torch.Tensor:
        levels = _tensors(x)
        if not levels:
            raise TypeError(f'cannot make a map from a {type(x).__name__} output')
        if len(levels) == 1:
            return levels[0]
        h, w = max((t.shape[-2], t.shape[-1]) for t in levels)
        extra = {} if self.mode == 'nearest' else {'align_corners': False}
        out = [t if t.shape[-2:] == (h, w) else
               F.interpolate(t, size=(h, w), mode=self.mode, **extra) for t in levels]
        return torch.cat(out, dim=1)


class TokenReshape:
    """``(B, N, C)`` transformer tokens -> ``(B, C, h, w)`` on the patch grid.

    Args:
        grid: ``(h, w)`` of the patch grid; ``None`` takes the largest square that fits.
            Non-square grids need it (e.g. ``(H_in // patch, W_in // patch)``).
        extra_tokens: Leading tokens that are not patches (class / distillation tokens);
            ``None`` infers ``N - h * w``.
    """

    def __init__(self, grid: Optional[Tuple[int, int]] = None,
                 extra_tokens: Optional[int] = None) -> None:
        self.grid = grid
        self.extra_tokens = extra_tokens

    def __call__(self, x: Any) -> torch.Tensor:
        if isinstance(x, (tuple, list)):
            x = x[0]
        if x.dim() == 4:
            return x
        if x.dim() != 3:
            raise ValueError(f'token output must be (B, N, C); got {tuple(x.shape)}')
        n = x.shape[1]
        if self.grid is None:
            side = int(math.isqrt(n))
            h, w = side, side
        else:
            h, w = self.grid
        extra = n - h * w if self.extra_tokens is None else self.extra_tokens
        if extra < 0 or n - extra != h * w:
            raise ValueError(f'{n} tokens do not make a {h}x{w} grid plus {extra} extra tokens')
        return x[:, extra:].reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2)


# ----------------------------------------------------------------- activations and gradients
class MultiLevelActivationsAndGradients:
    """What ``grad-cam``'s ``ActivationsAndGradients`` does, for layers with several outputs.

    A target layer may return a tuple / list / dict of tensors (an FPN) or be called several times
    per forward (a head shared across levels); all of its tensors are gathered as levels and the
    reshape transform merges them. Levels that receive no gradient count as zero gradient.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Optional[Callable], detach: bool = True) -> None:
        self.model = model
        # Set by DetectionCAM for gradient methods: a layer that ran but got no gradient (it
        # is not on the path of the explained score) is then an error, not a silently
        # misaligned or missing gradient.
        self.require_gradients = False
        self.reshape_transform = reshape_transform or MultiLevelReshape()
        self.detach = detach
        self.handles = []
        self._acts: List[List[torch.Tensor]] = [[] for _ in target_layers]
        self._grads: List[Dict[int, torch.Tensor]] = [{} for _ in target_layers]
        for i, layer in enumerate(target_layers):
            self.handles.append(layer.register_forward_hook(self._hook(i)))

    def _hook(self, index: int):

        def hook(module, args, output):
            for t in _tensors(output):
                level = len(self._acts[index])
                self._acts[index].append(t)
                if t.requires_grad:
                    t.register_hook(self._grad_hook(index, level))

        return hook

    def _grad_hook(self, index: int, level: int):

        def hook(grad):
            self._grads[index][level] = grad

        return hook

    def _merge(self, tensors: List[torch.Tensor]) -> torch.Tensor:
        merged = self.reshape_transform(tensors if len(tensors) > 1 else tensors[0])
        return merged.detach().cpu() if self.detach else merged

    @property
    def activations(self) -> List[torch.Tensor]:
        for index, acts in enumerate(self._acts):
            if not acts:
                raise LayerNotOnScorePath(index, ran=False)
        return [self._merge(a) for a in self._acts if a]

    @property
    def gradients(self) -> List[torch.Tensor]:
        out = []
        for index, (acts, grads) in enumerate(zip(self._acts, self._grads)):
            if self.require_gradients and acts and not grads:
                raise LayerNotOnScorePath(index, ran=True)
            if acts and grads:
                out.append(self._merge([grads.get(i, torch.zeros_like(a))
                                        for i, a in enumerate(acts)]))
        return out

    def __call__(self, x: torch.Tensor):
        self.clear()
        return self.model(x)

    def clear(self) -> None:
        for a in self._acts:
            a.clear()
        for g in self._grads:
            g.clear()

    def release(self) -> None:
        self.clear()
        for h in self.handles:
            h.remove()
        self.handles.clear()


class LayerNotOnScorePath(RuntimeError):
    """A target layer did not run, or no gradient of the explained score reached it."""

    def __init__(self, index: int, ran: bool) -> None:
        super().__init__(index, ran)
        self.index = index
        self.ran = ran


def _ablation_layer_class():
    from pytorch_grad_cam.ablation_layer import AblationLayer

    class MultiLevelAblationLayer(AblationLayer):
        """Stands in for a multi-level layer during AblationCAM: zeroes one channel per batch item.

        Channel indices count through the levels in order (the reshape transform's channel
        order), so index ``i`` of the merged map is channel ``i - offset_l`` of level ``l``.
        """

        def set_next_batch(self, input_batch_index, activations, num_channels_to_ablate):
            self.levels = [t[input_batch_index].detach().clone().unsqueeze(0).repeat(
                num_channels_to_ablate, *([1] * (t.dim() - 1))) for t in _tensors(activations)]
            self.container = type(activations) if isinstance(activations, (tuple, list)) else None

        def __call__(self, *args, **kwargs):
            offsets = np.cumsum([0] + [t.shape[1] for t in self.levels])
            for i in range(self.levels[0].shape[0]):
                ch = int(self.indices[i])
                level = int(np.searchsorted(offsets, ch, side='right') - 1)
                self.levels[level][i, ch - offsets[level]] = 0
            if self.container is None:
                return self.levels[0]
            return self.container(self.levels)

    return MultiLevelAblationLayer


# ------------------------------------------------------------------------- detector as function
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
        self._keep_graph = _DenseHeadsKeepGraph(detector)

    def forward(self, inputs: torch.Tensor) -> list:
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=self.metainfo) for _ in range(inputs.shape[0])]
        if not inputs.requires_grad and torch.is_grad_enabled():
            inputs = inputs.requires_grad_(True)
        with self._keep_graph:
            results = self.detector.predict(inputs, samples, rescale=True)
        return [r.pred_instances for r in results]


def _predict_by_feat_keep_graph(head, cls_scores, bbox_preds, score_factors=None,
                                batch_img_metas=None, cfg=None, rescale=False, with_nms=True):
    """MMDet's dense-head post-processing without its ``detach()`` of the head outputs.

    ``BaseDenseHead.predict_by_feat`` detaches each image's per-level outputs before decoding,
    which cuts the scores off from the network. This does the same per-image selection and
    hands the tensors, still in the graph, to the head's own ``_predict_by_feat_single``.
    """
    sizes = [c.shape[-2:] for c in cls_scores]
    priors = head.prior_generator.grid_priors(sizes, dtype=cls_scores[0].dtype,
                                              device=cls_scores[0].device)
    results = []
    for i, meta in enumerate(batch_img_metas):
        factors = ([f[i] for f in score_factors] if score_factors is not None else
                   [None] * len(cls_scores))
        results.append(head._predict_by_feat_single(
            [c[i] for c in cls_scores], [b[i] for b in bbox_preds], factors, priors, meta,
            cfg, rescale=rescale, with_nms=with_nms))
    return results


class _DenseHeadsKeepGraph:
    """Gives every dense head that uses ``BaseDenseHead.predict_by_feat`` the graph-keeping
    version above, as an attribute of that head instance only, removed on exit. The heads are
    found once; the context is entered for every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
        self.heads = [m for m in model.modules() if isinstance(m, BaseDenseHead) and
                      type(m).predict_by_feat is BaseDenseHead.predict_by_feat and
                      'predict_by_feat' not in vars(m)]

    def __enter__(self):
        for h in self.heads:
            h.predict_by_feat = types.MethodType(_predict_by_feat_keep_graph, h)
        return self

    def __exit__(self, *exc) -> None:
        for h in self.heads:
            vars(h).pop('predict_by_feat', None)


def _box_iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area = (box[2:] - box[:2]).clamp(min=0).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=1)
    return inter / (area + areas - inter).clamp(min=1e-6)


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

    def __init__(self, bbox: Sequence[float], label: int, use_iou: bool = True) -> None:
        self.bbox = torch.as_tensor(np.asarray(bbox, dtype=np.float32))
        self.label = int(label)
        self.use_iou = use_iou

    def same_class(self, pred_instances):
        """``(same-class mask, their boxes, their IoU with the box)``; ``None`` without one."""
        same = pred_instances.labels == self.label
        if not bool(same.any()):
            return None
        boxes = pred_instances.bboxes[same]
        return same, boxes, _box_iou(self.bbox.to(boxes), boxes).detach()

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


def normalize_in_box(saliency: np.ndarray, bbox: Sequence[float]) -> np.ndarray:
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


class _FrozenParams:
    """Turns ``requires_grad`` off for every parameter and restores the flags on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.params:
            p.requires_grad_(True)


class _EvalMode:
    """The model in eval mode inside the block, its own mode again afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        return self

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)


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
    with _EvalMode(model), torch.no_grad():
        processed = model.data_preprocessor(data, False)
        inputs = processed['inputs']
        samples, dets = [], []
        for b, sample in enumerate(processed['data_samples']):
            preds = DetectorFunction(model, sample)(inputs[b:b + 1])[0]
            sample = sample.clone()
            sample.pred_instances = preds
            samples.append(sample)
            dets.append(select_detections(preds, score_thr, topk, image=b))
    return DetectedBatch(inputs, samples, dets)


class DetectionCAM(MapMethod):
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
    """

    name = 'cam'

    def __init__(self, method: str = 'gradcam', target_layers: Sequence[str] = ('neck', ),
                 use_iou: bool = True, reshape_transform: Optional[Callable] = None,
                 batch_size: int = 8, ablation_batch_size: int = 32,
                 norm_in_bbox: bool = False, one_forward: bool = True) -> None:
        self.cam_cls = cam_class(method)
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
            kwargs.update(ablation_layer=_ablation_layer_class()(),
                          batch_size=self.ablation_batch_size)
        cam = self.cam_cls(fn, layers, **kwargs)
        cam.activations_and_grads.release()
        cam.activations_and_grads = MultiLevelActivationsAndGradients(
            fn, layers, self.reshape_transform)
        cam.activations_and_grads.require_gradients = bool(getattr(cam, 'uses_gradients',
                                                                   False))
        return cam

    def compute(self, source: Tuple[nn.Module, dict, float, int]) -> List[Map2D]:
        """``(model, data, score_thr, topk)`` of one image -> its per-detection maps."""
        model, data, score_thr, topk = source
        return self.explain(model, data, score_thr, topk).maps[0]

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
            detected = detect(model, data, score_thr, topk)
        result = CAMResult(detected.samples, detected.detections, [], [])
        with _EvalMode(model):
            for b, (sample, dets) in enumerate(zip(detected.samples, detected.detections)):
                maps, image_map = self._explain_image(
                    DetectorFunction(model, sample), layers, detected.inputs[b:b + 1], dets,
                    ImageGeometry.from_metainfo(sample.metainfo))
                result.maps.append(maps)
                result.image_maps.append(image_map)
        return result

    def _targets(self, dets: List[Detection]) -> List[Callable]:
        """One target callable per detection (subclasses choose other attributes)."""
        return [DetectionTarget(d.bbox, d.label, self.use_iou) for d in dets]

    def _explain_image(self, fn: DetectorFunction, layers: List[nn.Module], image: torch.Tensor,
                       dets: List[Detection], geom: ImageGeometry):
        if not dets:
            return [], None
        targets = self._targets(dets)
        targets.append(SumTarget(list(targets)))
        raw: List[np.ndarray] = []
        with _FrozenParams(fn), _restored_layers(fn, layers):
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
            finally:
                cam.activations_and_grads.release()
        aligned = [align_to_image(m, geom) for m in raw]
        maps = []
        for d, m in zip(dets, aligned[:-1]):
            if self.norm_in_bbox:
                m = normalize_in_box(m, d.bbox)
            maps.append(Map2D(m, self.method, dict(method=self.method, rank=d.rank,
                                                   aligned=True)))
        image_map = Map2D(aligned[-1], f'{self.method} (image)',
                          dict(method=self.method, aligned=True))
        return maps, image_map


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

    def _off_path_message(self, err: LayerNotOnScorePath, dets: List[Detection]) -> str:
        name = self.target_layers[err.index]
        if not err.ran:
            return (f'target layer {name} did not run during inference; choose a layer on the '
                    'test path (see tools/featmap_vis.py --preview-model)')
        score = 'class score' if not self.use_iou else 'score (IoU x class score)'
        return (f'target layer {name} is not used for the detections\' {score}: no gradient '
                f'of it reaches the layer ({self.method} needs one); choose a layer the score '
                'depends on, e.g. neck or a backbone stage, or a gradient-free method (eigencam)')


class _restored_layers:
    """Puts the original target layers back if AblationCAM's swap was interrupted."""

    def __init__(self, root: nn.Module, layers: List[nn.Module]) -> None:
        self.root = root
        self.places = []
        for layer in layers:
            for parent in root.modules():
                for key, child in parent._modules.items():
                    if child is layer:
                        self.places.append((parent, key, layer))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for parent, key, layer in self.places:
            if parent._modules.get(key) is not layer:
                parent._modules[key] = layer


__all__ = [
    'CAM_METHODS', 'cam_class', 'MultiLevelReshape', 'TokenReshape',
    'MultiLevelActivationsAndGradients', 'DetectorFunction', 'DetectionTarget', 'SumTarget',
    'DetectedBatch', 'detect', 'select_detections', 'normalize_in_box', 'CAMResult', 'DetectionCAM'
]
