"""Registries of mmattnvis, children of MMEngine's root registries.

``custom_hooks=[dict(type='mmattnvis.FeatMapVisHook')]`` resolves without an import: MMEngine
imports ``mmattnvis.registry`` for the ``mmattnvis`` scope, and the lazy ``locations`` below import
the modules that register the classes.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmattnvis', locations=['mmattnvis.hooks'])
VISUALIZERS = Registry(
    'visualizer',
    parent=MMENGINE_VISUALIZERS,
    scope='mmattnvis',
    locations=['mmattnvis.visualization'])
MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmattnvis',
    locations=['mmattnvis.models'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='mmattnvis', locations=['mmattnvis.datasets'])
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    scope='mmattnvis',
    locations=['mmattnvis.utils.dist'])
# Map-making methods (channel reductions, attention maps, explainers) share one registry:
# ``methods.base.build_method(dict(type='squeeze_mean'))``, ``dict(type='drise', ...)``.
METHODS = Registry('method', scope='mmattnvis', locations=['mmattnvis.methods'])
# One Run per task (``apis/``), by task name: ``apis.tasks.build_run('drise', model, ...)`` and
# ``ExplainHook(task='drise')``. A new task registers its Run and is imported by ``apis.tasks``.
RUNS = Registry('run', scope='mmattnvis', locations=['mmattnvis.apis.tasks'])
