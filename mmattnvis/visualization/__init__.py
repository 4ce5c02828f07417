"""Visualizers registered in the ``mmattnvis`` scope."""
from .featmap_visualizer import FeatMapVisualizer

__all__ = ['FeatMapVisualizer']
