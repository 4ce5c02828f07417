"""Visualizers registered in the ``mmattnvis`` scope."""
from .detection_figure import DetectionFigure
from .featmap_visualizer import FeatMapVisualizer, render_featmap

__all__ = ['DetectionFigure', 'FeatMapVisualizer', 'render_featmap']
