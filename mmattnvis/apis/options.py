"""Drawing options checked in one place (see :mod:`mmattnvis.render.options`)."""
from ..render.options import OptionError, check_draw_options

__all__ = ['OptionError', 'check_draw_options']
