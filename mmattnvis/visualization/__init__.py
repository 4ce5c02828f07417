"""Visualizers registered in the ``mmattnvis`` scope."""
from .attention_figure import AttentionFigure
from .featmap_visualizer import FeatMapVisualizer

__all__ = ['AttentionFigure', 'FeatMapVisualizer']
