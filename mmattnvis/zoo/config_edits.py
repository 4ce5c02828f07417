"""What a config is (a detector? one that needs external data?) and the in-place edits that make
its check small (test pipeline size, test-time post-processing)."""
from typing import TYPE_CHECKING, Any

from .classify import NeedsExternalData, NotADetector

if TYPE_CHECKING:
    from mmengine.config import Config


def _model_class(cfg: 'Config') -> type:
    """The registered class of ``cfg.model.type`` (no building)."""
    from mmengine.registry import MODELS
    model_type = cfg.model.get('type') if hasattr(cfg.model, 'get') else None
    if isinstance(model_type, type):
        return model_type
    if not model_type:
        raise NotADetector('the "model" entry has no type (config fragment)')
    with MODELS.switch_scope_and_registry(cfg.get('default_scope', 'mmdet')) as registry:
        cls = registry.get(model_type)
    if cls is None:
        raise KeyError(f'{model_type} is not in the model registry')
    return cls


def check_is_detector(cfg: 'Config') -> type:
    """The detector class of ``cfg``; :class:`NotADetector` for trackers, re-ID, semi-supervised
    teacher/student wrappers and other non-detector models."""
    from mmdet.models.detectors import BaseDetector
    from mmdet.models.detectors.semi_base import SemiBaseDetector
    cls = _model_class(cfg)
    if not issubclass(cls, BaseDetector):
        raise NotADetector(f'model type {cls.__name__} is not a detector')
    if issubclass(cls, SemiBaseDetector):
        raise NotADetector(f'model type {cls.__name__} is a semi-supervised teacher/student '
                           'wrapper')
    return cls


def check_no_external_inputs(cfg: 'Config') -> None:
    """:class:`NeedsExternalData` when the test pipeline needs more than an image (Fast R-CNN's
    precomputed proposals)."""
    from mmdet.utils import get_test_pipeline_cfg
    try:
        pipeline = get_test_pipeline_cfg(cfg)
    except Exception:
        return  # reported when the pipeline is built
    for t in pipeline:
        if isinstance(t, dict) and 'LoadProposals' in str(t.get('type', '')):
            raise NeedsExternalData('the test pipeline loads precomputed proposals '
                                    '(LoadProposals) from a proposal file')


def shrink_test_pipeline(cfg: 'Config', size: int) -> bool:
    """Set every resize of the test pipeline to ``size`` (in place); ``True`` if one changed."""
    from mmdet.utils import get_test_pipeline_cfg
    changed = False
    for t in get_test_pipeline_cfg(cfg):
        if not isinstance(t, dict) or 'Resize' not in str(t.get('type', '')):
            continue
        for key in ('scale', 'img_scale'):
            if isinstance(t.get(key), int):
                t[key], changed = size, True
            elif isinstance(t.get(key), (tuple, list)) and len(t[key]) == 2 \
                    and all(isinstance(v, int) for v in t[key]):
                t[key], changed = (size, size), True
        for key in ('width', 'height'):
            if isinstance(t.get(key), int):
                t[key], changed = size, True
    return changed


def lighten_test_cfg(cfg: 'Config', max_dets: int = 20, max_queries: int = 100,
                     min_score: float = 0.05) -> bool:
    """Make the model's test-time work small (in place): in its ``test_cfg`` s every
    ``max_per_img`` at most ``max_dets``, every ``score_thr`` at least ``min_score``, every NMS
    class-agnostic; Sparse R-CNN's ``num_proposals`` at most ``max_dets`` too, a DETR's
    ``num_queries`` at most ``max_queries``.

    With random weights, post-processing is most of a check's time and checks nothing of ours:
    hundreds of boxes (LVIS' 1203-class masks), per-class NMS over V3Det's 13204 sigmoid
    classes (about 0.5 each: minutes), 900 DINO queries. ``True`` if something changed.
    """
    changed = False

    def walk(node: Any, in_test_cfg: bool) -> None:
        nonlocal changed
        if isinstance(node, dict):
            for key, value in node.items():
                if in_test_cfg and key == 'max_per_img' and isinstance(value, int) \
                        and value > max_dets:
                    node[key], changed = max_dets, True
                elif in_test_cfg and key == 'score_thr' and isinstance(value, float) \
                        and value < min_score:
                    node[key], changed = min_score, True
                elif key == 'num_proposals' and isinstance(value, int) and value > max_dets:
                    node[key], changed = max_dets, True  # Sparse R-CNN: = rcnn max_per_img
                elif in_test_cfg and key == 'nms' and isinstance(value, dict) \
                        and 'iou_threshold' in value and not value.get('class_agnostic'):
                    value['class_agnostic'], changed = True, True
                else:
                    walk(value, in_test_cfg or key == 'test_cfg')
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item, in_test_cfg)

    walk(cfg.model, False)
    queries = cfg.model.get('num_queries') if hasattr(cfg.model, 'get') else None
    if isinstance(queries, int) and queries > max_queries:  # DETRs: DINO has 900
        cfg.model.num_queries, changed = max_queries, True
    return changed
