"""Fused multi-layer maps: one map per target layer, each normalised, then fused.

With several target layers (``--target-layers backbone.stage2 backbone.stage3 neck``) every
layer's map of a detection comes from the same forward and the same backward (the recorder
hooks all layers at once; one gradient per detection with respect to all of them). Each layer's
map is ReLU'd, brought to the network input's grid and min-max normalised by ``grad-cam``
(``BaseCAM.compute_cam_per_layer``); :func:`fuse_layer_maps` then fuses them:

* ``mean`` (``grad-cam``'s own ``aggregate_multi_layers``): the average of the normalised maps;
* ``max``: their pixel-wise maximum (the union of what the layers show);
* ``gmean``: their geometric mean (only what every layer shows; a layer that is zero somewhere
  zeroes the fused map there).

The fused map is min-max normalised again. With one layer every rule returns that layer's map,
so a single target layer behaves as before.

``pool_stride`` (off by default) first brings every layer's map to one common grid of cells of
that many input pixels (area average, then bilinear back): a gradient x activation map is a sum
of per-location contributions, so a cell's average is the share of that region, and layers of
stride 4 ... 32 are compared at one resolution instead of the finest layer's pixel noise.
"""
from typing import List, Sequence

import cv2
import numpy as np

#: ``--fusion`` values.
FUSIONS = ('mean', 'max', 'gmean')


def _scale(maps: np.ndarray) -> np.ndarray:
    """``(B, H, W)`` -> each item min-max normalised to [0, 1] (all-zero stays zero), as
    ``grad-cam``'s ``scale_cam_image`` without a resize."""
    lo = maps.min(axis=(1, 2), keepdims=True)
    out = maps - lo
    return (out / (1e-7 + out.max(axis=(1, 2), keepdims=True))).astype(np.float32)


def pool_map(maps: np.ndarray, stride: int) -> np.ndarray:
    """``(B, H, W)`` -> each map area-averaged on a grid of ``stride``-pixel cells, bilinearly
    resized back to ``H x W`` and min-max normalised (``stride <= 1``: unchanged)."""
    if stride <= 1:
        return maps
    h, w = maps.shape[-2:]
    gh, gw = max(1, -(-h // stride)), max(1, -(-w // stride))
    out = [cv2.resize(cv2.resize(m, (gw, gh), interpolation=cv2.INTER_AREA), (w, h),
                      interpolation=cv2.INTER_LINEAR) for m in maps.astype(np.float32)]
    return _scale(np.maximum(np.stack(out), 0))


def fuse_layer_maps(per_layer: Sequence[np.ndarray], fusion: str = 'mean',
                    pool_stride: int = 0) -> np.ndarray:
    """Fuse per-layer maps.

    Args:
        per_layer: One ``(B, 1, H, W)`` or ``(B, H, W)`` array per layer, on the same grid,
            each normalised to [0, 1] (``BaseCAM.compute_cam_per_layer``'s output).
        fusion: One of :data:`FUSIONS`.
        pool_stride: Pool every layer's map on cells of this many pixels first (0: off).

    Returns:
        ``(B, H, W)`` fused maps in [0, 1].
    """
    if fusion not in FUSIONS:
        raise ValueError(f'unknown fusion {fusion!r}; choose {", ".join(FUSIONS)}')
    stack = np.stack([np.asarray(m, dtype=np.float32).reshape(m.shape[0], *m.shape[-2:])
                      for m in per_layer], axis=1)
    stack = np.maximum(stack, 0)
    if pool_stride <= 1:
        return _scale(np.maximum(_fuse(stack, fusion), 0))
    pooled = np.stack([pool_map(stack[:, i], pool_stride) for i in range(stack.shape[1])],
                      axis=1)
    # Pooling a layer whose cells are twice the pooling cells (stride 32 on 16 px cells) gives
    # the 2 x 2 cells around its peak equal averages, so the fused map has a flat top a cell
    # wide, and a small box's peak pixel would be that top's corner. The unpooled maps,
    # weighted by TIE_BREAK, decide within it (the pooled map still decides the region).
    # Under ``max`` every pooled layer is 1 at its own peak, so the fused map is 1 at each
    # layer's peak: those ties are broken by where the layers agree (their unpooled mean), not
    # by their unpooled maximum, which favours a coarse layer (a stride-32 map upsampled keeps
    # ~0.98 at its peak, a stride-8 one ~0.94: a resampling artefact). On the COCO YOLOv5-n a
    # small person's box (11 x 28 input px) got the stage-4 peak 13 px above it while the
    # other three layers peak inside (kite.jpg).
    tie_rule = 'mean' if fusion == 'max' else fusion
    fused = (_scale(np.maximum(_fuse(pooled, fusion), 0))
             + TIE_BREAK * _scale(np.maximum(_fuse(stack, tie_rule), 0)))
    return _scale(fused)


#: Weight of the unpooled fusion that breaks the pooled map's ties (see :func:`fuse_layer_maps`).
TIE_BREAK = 1e-3


def _fuse(stack: np.ndarray, fusion: str) -> np.ndarray:
    """``(B, L, H, W)`` -> ``(B, H, W)`` by ``fusion``."""
    if fusion == 'mean':
        return stack.mean(axis=1)
    if fusion == 'max':
        return stack.max(axis=1)
    return np.exp(np.log(stack + 1e-6).mean(axis=1)) - 1e-6


class LayerFusion:
    """Stands in for ``BaseCAM.aggregate_multi_layers`` on one CAM instance: fuses with
    :func:`fuse_layer_maps` and keeps every call's per-layer maps, so a caller can show or
    score each layer beside the fused map (:meth:`layer_maps`)."""

    def __init__(self, fusion: str = 'mean', pool_stride: int = 0) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f'unknown fusion {fusion!r}; choose {", ".join(FUSIONS)}')
        self.fusion = fusion
        self.pool_stride = int(pool_stride)
        self.calls: List[List[np.ndarray]] = []

    def __call__(self, cam_per_target_layer: Sequence[np.ndarray]) -> np.ndarray:
        maps = [np.asarray(m, dtype=np.float32).reshape(m.shape[0], *m.shape[-2:])
                for m in cam_per_target_layer]
        self.calls.append(maps)
        return fuse_layer_maps(maps, self.fusion, self.pool_stride)

    def layer_maps(self) -> List[np.ndarray]:
        """Per layer, ``(N, H, W)``: the normalised maps of every item of every call so far."""
        if not self.calls:
            return []
        return [np.concatenate([c[i] for c in self.calls]) for i in range(len(self.calls[0]))]


__all__ = ['FUSIONS', 'fuse_layer_maps', 'pool_map', 'LayerFusion']
