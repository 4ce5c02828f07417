"""One test-mode forward of a built detector with feature-map (and DETR attention) capture, and
the shape / render checks of what was captured."""
import contextlib
import copy
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .config_edits import check_is_detector

if TYPE_CHECKING:
    import torch.nn as nn
    from mmengine.config import Config


def synthetic_image(size: int) -> np.ndarray:
    """A deterministic ``(3/4 size) x size`` BGR test image: gradient, noise, two boxes."""
    h, w = max(8, size * 3 // 4), max(8, size)
    rng = np.random.RandomState(0)
    img = rng.randint(0, 60, (h, w, 3)).astype(np.uint8)
    img[..., 0] += np.linspace(0, 120, w, dtype=np.uint8)[None]
    img[h // 5:h // 2, w // 6:w // 2] = (40, 200, 230)
    img[h // 2:h - h // 8, w // 2:w - w // 8] = (220, 80, 40)
    return img


def build_detector(cfg: 'Config') -> 'nn.Module':
    """The detector of ``cfg`` on CPU in eval mode with PyTorch's default random init: no
    ``Pretrained`` init, no download, and no ``init_weights`` (3-6 s per model on CPU).

    Raises:
        NotADetector: See :func:`check_is_detector`.
    """
    from mmengine.registry import MODELS, init_default_scope

    from ..apis.model import strip_pretrained
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    check_is_detector(cfg)
    model = MODELS.build(strip_pretrained(copy.deepcopy(cfg.model)))
    model.cfg = cfg
    model.eval()  # not ``return model.eval()``: some detectors' ``train()`` returns None (LAD)
    return model


def _check_featmaps(cap: Any, targets: Sequence[str], batch: int) -> 'OrderedDict':
    missing = cap.missing()
    if missing:
        raise AssertionError(f'layer(s) {", ".join(missing)} did not run in the test forward')
    tensors = cap.tensors()
    if not tensors:
        raise AssertionError(f'no tensors captured from {", ".join(targets)}')
    for name, t in tensors.items():
        if t.dim() != 4 or t.shape[0] != batch or min(t.shape) < 1:
            raise AssertionError(f'captured {name} has shape {tuple(t.shape)}, expected '
                                 f'({batch}, C, H, W)')
    return tensors


def _check_render(tensors: 'OrderedDict', targets: Sequence[str], image_bgr: np.ndarray,
                  sample: Any) -> np.ndarray:
    from ..apis.inference import bgr_to_rgb
    from ..methods.featmap import build_reduction
    from ..render.geometry import ImageGeometry
    from ..visualization import render_featmap
    last = [k for k in tensors if k.split('.')[0].split('#')[0] == targets[-1]] or list(tensors)
    fmap = tensors[last[0]][0]
    panel = render_featmap(fmap, bgr_to_rgb(image_bgr), build_reduction('squeeze_mean'),
                           geometry=ImageGeometry.from_metainfo(sample.metainfo))
    h, w = image_bgr.shape[:2]
    if not (isinstance(panel, np.ndarray) and panel.dtype == np.uint8 and panel.shape == (h, w, 3)):
        raise AssertionError(f'rendered panel of {last[0]} is {getattr(panel, "dtype", None)} '
                             f'{getattr(panel, "shape", None)}, expected uint8 ({h}, {w}, 3)')
    return panel


def _check_attention(acap: Any, batch: int) -> None:
    import torch
    record = acap.record
    wanted = sorted(i for p, i in acap.targets if p == 'decoder_cross')
    if not wanted:
        raise AssertionError('no decoder cross-attention module found')
    got = record.layers('decoder_cross')
    if got != wanted:
        raise AssertionError(f'decoder cross-attention recorded for layers {got}, expected '
                             f'{wanted}')
    queries = None
    if record.head_outputs is not None:
        queries = int(record.head_outputs[0].shape[1])
    for i in wanted:
        module = acap.targets[('decoder_cross', i)][1]
        heads = int(module.num_heads)
        key = ('decoder_cross', i)
        if key in record.dense:
            att = record.dense[key]
            ok = att.dim() == 4 and att.shape[0] == batch and att.shape[1] == heads \
                and min(att.shape) > 0
            if ok and record.key_shape is not None:
                ok = att.shape[3] == record.key_shape[0] * record.key_shape[1]
            if ok and queries is not None:
                ok = att.shape[2] == queries
            if not ok:
                raise AssertionError(f'decoder layer {i} cross-attention has shape '
                                     f'{tuple(att.shape)} (batch {batch}, {heads} heads, '
                                     f'{queries} queries, keys {record.key_shape})')
            total = att.float().sum(-1)
            if not torch.isfinite(att).all() or not torch.allclose(
                    total, torch.ones_like(total), atol=1e-3):
                raise AssertionError(f'decoder layer {i} cross-attention rows do not sum to 1')
        else:
            rec = record.deformable[key]
            lv, pts = int(module.num_levels), int(module.num_points)
            loc, w = rec.locations, rec.weights
            ok = (loc.dim() == 6 and tuple(loc.shape[2:]) == (heads, lv, pts, 2)
                  and loc.shape[0] == batch and loc.shape[1] > 0
                  and tuple(w.shape) == tuple(loc.shape[:-1])
                  and tuple(rec.spatial_shapes.shape) == (lv, 2))
            if ok and queries is not None:
                ok = loc.shape[1] == queries
            if not ok:
                raise AssertionError(
                    f'decoder layer {i} deformable sampling has locations {tuple(loc.shape)}, '
                    f'weights {tuple(w.shape)}, spatial shapes {tuple(rec.spatial_shapes.shape)}'
                    f' (batch {batch}, {heads} heads, {lv} levels, {pts} points, '
                    f'{queries} queries)')
            total = w.float().sum((-1, -2))
            if not (torch.isfinite(loc).all() and torch.allclose(
                    total, torch.ones_like(total), atol=1e-3)):
                raise AssertionError(f'decoder layer {i} sampling weights do not sum to 1')


def forward_and_check(model: 'nn.Module', cfg: 'Config', image_bgr: np.ndarray) -> np.ndarray:
    """One test-mode forward through ``cfg``'s test pipeline with feature-map capture (and
    attention capture for DETRs), then the shape / render checks; returns the rendered panel
    (RGB).

    Raises:
        AssertionError: A check failed (the message names it).
    """
    import torch

    from ..apis.inference import build_test_pipeline, prepare_batch
    from ..capture.attention import AttentionCapture, is_detr_family
    from ..capture.featmaps import FeatureCapture

    pipeline = build_test_pipeline(cfg)
    data = prepare_batch([image_bgr], pipeline)
    targets = ['backbone'] + (['neck'] if getattr(model, 'neck', None) is not None else [])
    detr = is_detr_family(model)
    with contextlib.ExitStack() as stack:
        cap = stack.enter_context(FeatureCapture(model, targets))
        acap = stack.enter_context(AttentionCapture(model, parts=('decoder_cross', ))) \
            if detr else None
        with torch.no_grad():
            samples = model.test_step(data)  # type: ignore[operator]  # nn.Module attributes are typed Tensor | Module
    if len(samples) != 1:
        raise AssertionError(f'test_step returned {len(samples)} samples for 1 image')
    tensors = _check_featmaps(cap, targets, 1)
    panel = _check_render(tensors, targets, image_bgr, samples[0])
    if acap is not None:
        _check_attention(acap, 1)
    return panel
