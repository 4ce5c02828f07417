"""Checks of the arguments every mmattnvis hook shares (one line naming hook and field)."""
from typing import Any


class HookConfigError(ValueError):
    """A bad hook argument; the message names the hook and the field."""


def check_common_fields(hook: Any) -> None:
    """Raise :class:`HookConfigError` (through ``hook._fail``) for a bad shared argument of a
    :class:`~mmattnvis.hooks.base.CaptureVisHook`."""
    def positive_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    if not positive_int(hook.interval):
        hook._fail('interval', f'must be a positive integer, got {hook.interval!r}')
    if hook.max_samples is not None and (not isinstance(hook.max_samples, int)
                                         or hook.max_samples < 0):
        hook._fail('max_samples', f'must be None or an integer >= 0, got '
                   f'{hook.max_samples!r}')
    try:
        thr = float(hook.score_thr)
    except (TypeError, ValueError):
        thr = float('nan')
    if not 0.0 <= thr <= 1.0:
        hook._fail('score_thr', f'must be within [0, 1], got {hook.score_thr!r}')
    if not positive_int(hook.evolution_interval):
        hook._fail('evolution_interval', 'must be a positive integer, got '
                   f'{hook.evolution_interval!r}')
    if not positive_int(hook.evolution_cell) or hook.evolution_cell < 32:
        hook._fail('evolution_cell', f'must be an integer >= 32, got {hook.evolution_cell!r}')
    if hook.evolution_video not in (None, 'gif', 'mp4'):
        hook._fail('evolution_video', "must be 'gif', 'mp4' or None, got "
                   f'{hook.evolution_video!r}')
    if hook.evolution_video == 'mp4':
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            hook._fail('evolution_video', "'mp4' needs imageio-ffmpeg (pip install "
                       "imageio-ffmpeg); or use 'gif'")
    fixed = hook.fixed_samples
    ok = (isinstance(fixed, int) and not isinstance(fixed, bool) and fixed >= 0) or (
        isinstance(fixed, (list, tuple)) and all(
            isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
            for v in fixed))
    if not ok:
        hook._fail('fixed_samples', 'must be a count >= 0 or a list of dataset indices / '
                   f'image file names, got {fixed!r}')
    if not isinstance(getattr(hook, 'resume', False), bool):
        hook._fail('resume', f'must be True or False, got {hook.resume!r}')
    for field in ('out_dir', 'results_dir', 'report_dir'):
        value = getattr(hook, field)
        if value is not None and (not isinstance(value, str) or not value):
            hook._fail(field, f'must be None or a directory path, got {value!r}')
