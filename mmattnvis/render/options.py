"""Drawing options checked in one place, for the CLIs (flags) and the hooks (config fields)."""
from dataclasses import dataclass
from typing import Optional

from ..utils.cli import FIGURE_FORMATS
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



@dataclass
class FigureOptions:
    """How figures are written (the shared flags of :func:`mmattnvis.utils.cli.add_figure_args`):
    boxes and labels on or off, a colour bar, each panel also on its own, the file format
    (``None``: the tool's default)."""
    boxes: bool = True
    labels: bool = True
    colorbar: bool = False
    save_panels: bool = False
    format: Optional[str] = None

    @classmethod
    def from_args(cls, args) -> 'FigureOptions':
        """From parsed flags (missing flags keep their defaults); checked."""
        opts = cls(boxes=not getattr(args, 'no_boxes', False),
                   labels=not getattr(args, 'no_labels', False),
                   colorbar=bool(getattr(args, 'colorbar', False)),
                   save_panels=bool(getattr(args, 'save_panels', False)),
                   format=getattr(args, 'format', None))
        opts.check()
        return opts

    def check(self) -> None:
        """Raises :class:`OptionError` for an unknown format."""
        if self.format is not None:
            fmt = str(self.format).lower().lstrip('.')
            fmt = 'jpg' if fmt == 'jpeg' else fmt
            if fmt not in FIGURE_FORMATS:
                raise OptionError('format', f"--format {self.format!r}: choose one of "
                                  f"{', '.join(FIGURE_FORMATS)}")
            self.format = fmt

    def extension(self, default: Optional[str] = '.png') -> Optional[str]:
        """The written files' extension (``default`` when no format was asked for)."""
        return default if self.format is None else f'.{self.format}'
