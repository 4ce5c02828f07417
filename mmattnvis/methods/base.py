"""The typed method families.

- :class:`ChannelReduction`: a ``(C, H, W)`` feature map -> maps (mean, max, top-k channels...).
- :class:`AttentionMaps`: a recorded forward (:class:`~mmattnvis.capture.attention.AttentionRecord`
  or a rollout) and where to look (a detection's query, a point, a layer) -> maps.
- :class:`Explainer`: a model, a prepared batch and its kept detections -> maps per detection
  (the Grad-CAM family, ODAM, D-RISE, Chefer et al.'s relevance).

Methods are registered in :data:`~mmattnvis.registry.METHODS` by name, and built from configs
and CLIs with :func:`build_method`. A method never runs hooks of its own or draws.
"""
from typing import Any, Dict, Generic, List, Optional, Tuple, TypeVar

import torch

from ..registry import METHODS
from ..structures.maps import Map2D

Source = TypeVar('Source')


class MapMethod(Generic[Source]):
    """Base of the map-making families: ``compute(source) -> List[Map2D]``; the family fixes
    the type of ``source``."""

    name: str = 'base'
    family: str = 'base'

    def compute(self, source: Source) -> List[Map2D]:
        raise NotImplementedError

    def __call__(self, source: Source) -> List[Map2D]:
        return self.compute(source)


class ChannelReduction(MapMethod[torch.Tensor]):
    """A ``(C, H, W)`` feature map (tensor or array) -> one map, or one per kept channel."""

    family = 'channel_reduction'


class AttentionMaps(MapMethod[Tuple[Any, ...]]):
    """A recorded forward plus where to look -> maps on the token grid. Each method documents
    its source tuple (e.g. ``(record, detection, layer)``)."""

    family = 'attention'


class Explainer:
    """Maps per kept detection of a prepared batch.

    ``explain(model, data=None, score_thr=0.3, topk=10, detected=None)`` returns a result with
    ``samples``, ``detections`` (per image) and ``maps`` (per image, per detection); with
    ``detected`` (:func:`~mmattnvis.methods.cam.detect`), several explainers share one
    detection pass.
    """

    name: str = 'explainer'
    family = 'explainer'

    def explain(self, model: Any, data: Optional[dict] = None, score_thr: float = 0.3,
                topk: int = 10, detected: Any = None) -> Any:
        raise NotImplementedError


def build_method(cfg: Dict[str, Any]) -> Any:
    """A method from its config, ``dict(type='squeeze_mean')`` or ``dict(type='drise', ...)``
    (the names of :data:`~mmattnvis.registry.METHODS`).

    Looked up in :data:`~mmattnvis.registry.METHODS` itself: ``Registry.build`` would first
    search the current default scope's registry tree (``mmdet`` / ``mmyolo``, which has no
    ``method`` registry) and log MMEngine's "Failed to search registry with scope ..." warning
    on every run."""
    args = dict(cfg)
    kind = args.pop('type')
    cls = METHODS.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        raise KeyError(f'{kind!r} is not in the mmattnvis::method registry; registered: '
                       f'{", ".join(sorted(METHODS.module_dict))}')
    return cls(**args)
