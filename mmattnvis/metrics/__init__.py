"""Faithfulness metrics for detector saliency maps."""
from .faithfulness import (
    auc,
    box_blur_saliency,
    box_iou,
    box_saliency,
    detection_similarity,
    energy_pointing_game,
    perturbation_auc,
    perturbation_images,
    pointing_game,
    random_saliency,
)
from .localisation import above_half_max, effective_area, energy_in_mask, mask_iou
from .odam_protocol import (
    object_discrimination_index,
    odam_perturbation_auc,
    odam_score,
    pointing_game_strict,
)
from .sanity import SANITY_THRESHOLD, sanity_passed, spearman

__all__ = [
    'auc', 'box_blur_saliency', 'box_iou', 'box_saliency', 'detection_similarity',
    'energy_pointing_game', 'perturbation_auc',
    'perturbation_images', 'pointing_game', 'random_saliency', 'object_discrimination_index',
    'odam_perturbation_auc', 'odam_score', 'pointing_game_strict', 'above_half_max',
    'effective_area', 'energy_in_mask', 'mask_iou', 'SANITY_THRESHOLD', 'sanity_passed', 'spearman'
]
