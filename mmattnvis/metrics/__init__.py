"""Faithfulness metrics for detector saliency maps."""
from .faithfulness import (auc, box_iou, detection_similarity, energy_pointing_game,
                           perturbation_auc, perturbation_images, pointing_game, random_saliency)

__all__ = [
    'auc', 'box_iou', 'detection_similarity', 'energy_pointing_game', 'perturbation_auc',
    'perturbation_images', 'pointing_game', 'random_saliency'
]
