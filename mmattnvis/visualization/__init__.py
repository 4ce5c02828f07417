"""Visualizers registered in the ``mmattnvis`` scope."""
from .attention_figure import AttentionFigure
from .featmap_visualizer import FeatMapVisualizer, render_featmap

__all__ = ['AttentionFigure', 'FeatMapVisualizer', 'render_featmap']
