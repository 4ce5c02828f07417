"""Faithfulness metrics for detector saliency maps."""
from .faithfulness import (
    auc,
    box_iou,
    detection_similarity,
    energy_pointing_game,
    perturbation_auc,
    perturbation_images,
    pointing_game,
    random_saliency,
)
from .odam_protocol import (
    object_discrimination_index,
    odam_perturbation_auc,
    odam_score,
    pointing_game_strict,
)

__all__ = [
    'auc', 'box_iou', 'detection_similarity', 'energy_pointing_game', 'perturbation_auc',
    'perturbation_images', 'pointing_game', 'random_saliency', 'object_discrimination_index',
    'odam_perturbation_auc', 'odam_score', 'pointing_game_strict'
]
