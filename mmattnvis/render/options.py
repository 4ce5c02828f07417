"""Drawing options checked in one place, for the CLIs (flags) and the hooks (config fields)."""
from typing import Optional

from ..utils.errors import UserInputError
from ..utils.validate import check_within
from .image import colormap_code


class OptionError(UserInputError):
    """A bad option; ``field`` is its name in a config (the hooks' argument)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_draw_options(colormap: Optional[str] = None, alpha: Optional[float] = None,
                       score_thr: Optional[float] = None) -> None:
    """Check the options every figure shares; ``None`` skips one.

    Raises:
        OptionError: naming the flag in its message and the config field in ``field``.
    """
    if colormap is not None:
        try:
            colormap_code(colormap)
        except ValueError as err:
            raise OptionError('colormap', str(err)) from None
    for field, flag, value in (('alpha', '--alpha', alpha), ('score_thr', '--score-thr',
                                                              score_thr)):
        if value is None:
            continue
        try:
            check_within(flag, value, 0.0, 1.0)
        except UserInputError as err:
            raise OptionError(field, str(err)) from None
