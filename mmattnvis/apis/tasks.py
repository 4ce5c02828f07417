"""The task registry: task name -> Run class (:data:`~mmattnvis.registry.RUNS`), its options
from flat fields, and the drawing sink of its records.

A new task registers its Run (``@RUNS.register_module(name='errors')``) in its own module and
adds that module to :data:`TASK_MODULES`; ``ExplainHook(task=...)`` then finds it unchanged.
"""
import importlib
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import numpy as np

from ..registry import RUNS
from .options import OptionError
from .run import Run

#: Modules that register Runs (imported on first use of the registry).
TASK_MODULES = ('mmattnvis.apis.featmap_runner', 'mmattnvis.apis.attention',
                'mmattnvis.apis.cam', 'mmattnvis.apis.ablation',
                'mmattnvis.apis.faithfulness_runner', 'mmattnvis.apis.errors')
#: Defaults a task name implies on a shared Run (``odam``, ``drise`` and ``occlusion`` are
#: CAMRuns).
PRESETS: Dict[str, Dict[str, Any]] = {
    'cam': {'method': ['gradcam']},
    'odam': {'method': ['odam']},
    'drise': {'method': ['drise']},
    'occlusion': {'method': ['occlusion']},
    'relevance': {'mode': 'relevance'},
}


def _import_tasks() -> None:
    for name in TASK_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # a task module that is not there (yet) is no error
                raise


def task_names() -> List[str]:
    """Every registered task."""
    _import_tasks()
    return sorted(RUNS.module_dict)


def run_class(task: str) -> Type[Run]:
    """The Run class of ``task``; :class:`OptionError` (field ``task``) for an unknown one."""
    _import_tasks()
    cls = RUNS.get(task) if isinstance(task, str) else None
    if cls is None:
        raise OptionError('task', f'unknown task {task!r}; choose {", ".join(task_names())}')
    return cls


def task_options(task: str, **fields: Any):
    """The options of ``task`` from flat fields (the task's presets filled in first)."""
    cls = run_class(task)
    merged = dict(PRESETS.get(task, {}))
    merged.update(fields)
    options = cls.options_class.from_fields(**merged)
    options.validate()
    return options


def build_run(task: str, model, cfg: Any = None, **fields: Any):
    """``Run(model, options)`` of ``task`` from flat fields (a hook's config, CLI flags)."""
    return run_class(task)(model, task_options(task, **fields), cfg=cfg)


#: ``fn(record, image_rgb, options, tag, meta=None, cell_width=...) -> [(name, rgb)]``
Figure = Callable[..., List[Tuple[str, np.ndarray]]]


def task_figure(task: str) -> Optional[Figure]:
    """The drawing sink of ``task``'s records: ``fn(record, image_rgb, options, tag) ->
    [(name, rgb)]``, or ``None`` (records only)."""
    from ..visualization.task_figures import figure_for
    return figure_for(task)


__all__ = ['TASK_MODULES', 'PRESETS', 'task_names', 'run_class', 'task_options', 'build_run',
           'task_figure']
