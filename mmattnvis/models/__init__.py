"""Detector variants used by the project's own small shapes models."""
from .slim_dino import SlimDINO, SlimDinoTransformerDecoder

__all__ = ['SlimDINO', 'SlimDinoTransformerDecoder']
