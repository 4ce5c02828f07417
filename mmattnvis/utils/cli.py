"""Shared CLI plumbing: one-line errors, atomic image writes, device choice."""
import argparse
import functools
import os
import os.path as osp
import sys
from typing import Callable, Optional

import cv2
import numpy as np

from .checkpoint import CheckpointError
from .errors import UserInputError
from .fileio import write_bytes_atomic

EXIT_USAGE = 2
DEVICE_HELP = ('device: auto (default: cuda:0 if available, else cpu), cpu, cuda or cuda:N '
               '(cuda without CUDA falls back to cpu with a warning)')


def is_user_error(err: BaseException) -> bool:
    """Errors whose message is meant for the user: :class:`UserInputError`,
    :class:`CheckpointError` and the hooks' ``HookConfigError``."""
    if isinstance(err, (UserInputError, CheckpointError)):
        return True
    hooks = sys.modules.get('mmattnvis.hooks.base')  # raised only once the hooks are imported
    return hooks is not None and isinstance(err, getattr(hooks, 'HookConfigError', ()))


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line. An error re-raised from a DataLoader worker carries
    the worker's traceback in its message; its last line holds the original message."""
    text = str(err).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith('Caught ') and 'Traceback' in text:
        last = lines[-1]
        name = type(err).__name__ + ': '
        return last.split(name, 1)[1] if name in last else last
    return ' '.join(lines) if lines else type(err).__name__


class _LineTracker:
    """A stream proxy that remembers whether the last text written to it left a line open (a
    progress bar rewrites its line with ``\\r`` and ends it only when done)."""

    line_open = False

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if text:
            _LineTracker.line_open = not text.endswith('\n')
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def ProgressBar(total: int):  # noqa: N802  (drop-in for mmengine's class)
    """MMEngine's ``ProgressBar`` over ``total`` steps on stdout, whose open line
    :func:`cli_main` ends before it prints an error (no ``ETA:error: ...``)."""
    from mmengine.utils import ProgressBar as MMEngineProgressBar
    return MMEngineProgressBar(total, file=_LineTracker(sys.stdout))


def end_open_line() -> None:
    """Finish a line a progress bar left open on stdout, so the next message starts its own."""
    try:
        sys.stdout.flush()
    except (AttributeError, ValueError, OSError):
        return
    if _LineTracker.line_open:
        sys.stdout.write('\n')
        sys.stdout.flush()
        _LineTracker.line_open = False


def cli_main(func: Callable[..., int]) -> Callable[..., int]:
    """Run ``func``; user errors become ``error: <one line>`` on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        _LineTracker.line_open = False
        try:
            return func(*args, **kwargs) or 0
        except Exception as err:
            if not is_user_error(err):
                raise
            end_open_line()
            print(f'error: {one_line(err)}', file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print('error: interrupted', file=sys.stderr)
            return 130

    return wrapper


class OneLineArgumentParser(argparse.ArgumentParser):
    """``argparse`` that reports a bad argument as one ``error: ...`` line (exit code 2)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f'error: {message} (see {self.prog} --help)\n')


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--cfg-options`` and ``--unsafe-load``, as every model-loading tool has them
    (the positional ``config`` / ``checkpoint`` stay in each tool, where their order differs)."""
    from .validate import CfgOptionsAction
    parser.add_argument('--device', default='auto', help=DEVICE_HELP)
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='allow full unpickling of the checkpoint (trusted files only)')


#: Formats a figure can be written in (``--format``).
FIGURE_FORMATS = ('png', 'jpg', 'pdf', 'svg')


def add_figure_args(parser: argparse.ArgumentParser, heat: bool = True,
                    cell_width: bool = True) -> None:
    """The figure flags every image tool shares, and its ``--save-results`` / ``--report``.

    ``--no-boxes``, ``--no-labels``, ``--save-panels`` and ``--format png|jpg|pdf|svg`` always;
    with ``heat`` (tools that draw heat maps) ``--alpha``, ``--colormap`` and ``--colorbar``;
    with ``cell_width`` ``--cell-width``. Checked by
    :meth:`mmattnvis.render.options.FigureOptions.from_args`.
    """
    if heat:
        parser.add_argument('--alpha', type=float, default=0.5, help='heat-map weight')
        parser.add_argument('--colormap', default='jet', help='OpenCV colormap name')
        parser.add_argument('--colorbar', action='store_true',
                            help='add a colour bar (low .. high of the colormap) to each figure')
    if cell_width:
        parser.add_argument('--cell-width', type=int, default=320, help='figure cell width (px)')
    parser.add_argument('--no-boxes', action='store_true',
                        help='do not draw detection boxes (nor their labels)')
    parser.add_argument('--no-labels', action='store_true',
                        help='draw boxes without their class / score labels')
    parser.add_argument('--save-panels', action='store_true',
                        help='also write each panel of a figure on its own '
                        '(<image>_panelNN_<what>.<format>)')
    parser.add_argument('--format', choices=FIGURE_FORMATS, default=None,
                        help='figure file format; pdf / svg embed the maps as images with '
                        'vector boxes and text (default: png; featmap: the image\'s own)')
    add_result_args(parser)


def add_result_args(parser: argparse.ArgumentParser) -> None:
    """``--save-results DIR`` and ``--report DIR``: the records of the run (JSON + arrays) and
    the HTML report built from them."""
    parser.add_argument('--save-results', metavar='DIR', default=None,
                        help='also save one result record per image here (JSON + compressed '
                        'arrays; `mmattnvis report DIR` builds a report from them)')
    parser.add_argument('--report', metavar='DIR', default=None,
                        help='build an HTML report of the run here (open DIR/index.html)')


def drise_masks_arg(value: str):
    """``--drise-masks``: a number or ``auto``."""
    if value.strip().lower() == 'auto':
        return 'auto'
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number or auto, got {value!r}') from None


def add_drise_args(parser: argparse.ArgumentParser) -> None:
    """``--drise-masks`` (a number or ``auto``), ``--drise-grid``, ``--drise-prob``,
    ``--drise-batch``, ``--drise-sampling``, ``--drise-tol``, ``--drise-max-masks``,
    ``--drise-fast`` / ``--no-drise-fast``, ``--drise-region`` and ``--occlusion-grid`` of the
    explainer tools (the seed stays with each tool, where it seeds more than D-RISE)."""
    parser.add_argument('--drise-masks', type=drise_masks_arg, default=1000,
                        help='D-RISE: number of masks, or auto: stop once the map has '
                        'converged (see --drise-tol, --drise-max-masks)')
    parser.add_argument('--drise-grid', type=int, default=16, help='D-RISE: mask grid cells')
    parser.add_argument('--drise-prob', type=float, default=0.5,
                        help='D-RISE: probability a grid cell is kept')
    parser.add_argument('--drise-batch', type=int, default=None,
                        help='D-RISE: masked images per forward pass (default: 16 on a GPU; on a '
                        'CPU by input size, 2 for 640 x 640, 4 up to 512 x 512)')
    parser.add_argument('--drise-sampling', default=None,
                        choices=['random', 'antithetic', 'sobol', 'sobol-antithetic'],
                        help='D-RISE: how masks are drawn (default: random, plain D-RISE, for '
                        'a number of masks; sobol for auto, which needs fewer)')
    parser.add_argument('--drise-tol', type=float, default=0.1,
                        help='D-RISE auto: stop when 1 - Pearson between the map at N masks '
                        'and at N/2 stays below this (checked every 50 masks)')
    parser.add_argument('--drise-max-masks', type=int, default=4000,
                        help='D-RISE auto: at most this many masks')
    parser.add_argument('--drise-fast', action=argparse.BooleanOptionalAction, default=None,
                        help='D-RISE: run the masked passes on a copy of the model with '
                        'BatchNorm folded (channels-last on a CPU), checked against the '
                        'model first (default: on for --drise-masks auto, off for a number)')
    parser.add_argument('--drise-region', default='image', choices=['image', 'box'],
                        help='D-RISE: mask the whole image (the paper; all detections from the '
                        'same passes) or each detection\'s own box (its grid over the box, the '
                        'rest of the image as it is; N passes per detection; the map is 0 '
                        'outside the box)')
    parser.add_argument('--occlusion-grid', type=int, default=4,
                        help='occlusion: cells per side of each detection\'s box (2 x grid^2 + 2 '
                        'passes per detection)')


def check_display() -> None:
    """``--show`` needs a window system; fail in one line instead of waiting forever."""
    if sys.platform.startswith('linux') and not (os.environ.get('DISPLAY')
                                                 or os.environ.get('WAYLAND_DISPLAY')):
        raise UserInputError('--show needs a display and none is available (DISPLAY is not '
                             'set); drop --show and open the images written to --out-dir')


def pick_device(device: str) -> str:
    """``device`` if usable, else ``cpu`` when a CUDA device was asked for but is absent; a
    malformed or unavailable device is a one-line error."""
    from .validate import check_device
    return check_device(device)


def write_image_atomic(path: str, image_rgb: np.ndarray) -> None:
    """Write an RGB image; a failure never leaves a half-written file behind."""
    ext = osp.splitext(path)[1].lower() or '.png'
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(image_rgb[..., ::-1]))
    if not ok:
        raise UserInputError(f'cannot encode image as {ext}: {path}')
    write_bytes_atomic(path, buf.tobytes())


# ----- IMG CONFIG CHECKPOINT in either order ------------------------------------------------------
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
CHECKPOINT_EXTS = ('.pth', '.pt', '.ckpt')
INPUT_ORDERS = (('img', 'config', 'checkpoint'), ('config', 'checkpoint', 'img'))
INPUTS_HELP = ('Inputs go in either order: IMG CONFIG CHECKPOINT (as MMYOLO\'s demos) or CONFIG '
               'CHECKPOINT IMG; they are told apart by what they are: CONFIG is a .py file or a '
               'package config (mmdet::, mmyolo::, mmattnvis::), CHECKPOINT a .pth/.pt file, '
               '"none" (random weights) or a shipped model (mmattnvis::shapes/<name>.pth), IMG an '
               'image file or a directory.')


def add_input_args(parser: argparse.ArgumentParser) -> None:
    """The positional ``IMG CONFIG CHECKPOINT`` of the image tools (either order, see
    :func:`order_inputs`); the order rule goes into ``--help``."""
    parser.add_argument('img', metavar='IMG', help='image file or directory')
    parser.add_argument('config', metavar='CONFIG',
                        help='config file, or mmdet:: / mmyolo:: / mmattnvis:: config')
    parser.add_argument('checkpoint', metavar='CHECKPOINT',
                        help='checkpoint file, "none" (random weights) or '
                        'mmattnvis::shapes/<name>.pth')
    parser.epilog = f'{parser.epilog} {INPUTS_HELP}' if parser.epilog else INPUTS_HELP


def input_kind(value: str) -> Optional[str]:
    """``'img'``, ``'config'`` or ``'checkpoint'`` from what ``value`` is, ``None`` if unclear."""
    low = value.lower()
    if low == 'none' or low.endswith(CHECKPOINT_EXTS):
        return 'checkpoint'
    if low.endswith('.py'):
        return 'config'
    if low.endswith(IMAGE_EXTS) or osp.isdir(value):
        return 'img'
    return None


def order_inputs(args: argparse.Namespace) -> argparse.Namespace:
    """Put ``args.img`` / ``args.config`` / ``args.checkpoint`` right when they were given as
    ``CONFIG CHECKPOINT IMG``; an input whose kind is unclear is placed by the others.

    Raises:
        UserInputError: when neither accepted order fits, or both do (ambiguous).
    """
    given = [str(args.img), str(args.config), str(args.checkpoint)]
    kinds = [input_kind(v) for v in given]
    fits = [order for order in INPUT_ORDERS
            if all(k is None or k == want for k, want in zip(kinds, order))]
    if len(fits) != 1:
        seen = ', '.join(f'{v} ({k or "unclear"})' for v, k in zip(given, kinds))
        why = 'cannot tell which is which' if fits else 'not in an accepted order'
        raise UserInputError(f'inputs {seen}: {why}; give IMG CONFIG CHECKPOINT or CONFIG '
                             'CHECKPOINT IMG (CONFIG: .py or pkg::...py; CHECKPOINT: .pth/.pt, '
                             'none or mmattnvis::shapes/<name>.pth; IMG: image file or directory)')
    for name, value in zip(fits[0], given):
        setattr(args, name, value)
    return args
