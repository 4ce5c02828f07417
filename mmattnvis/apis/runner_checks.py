"""Checks of a runner config before MMEngine builds anything (``tools/test.py``, ``val.py``,
``train.py``).

MMEngine reports a bad config deep inside ``Runner.from_cfg`` or the dataloader build, as a
traceback (``model = 5``: ``TypeError``; an unknown model or hook type: the registry's
``KeyError``; ``batch_size=0``: torch's ``ValueError``; a misspelt hook argument: a ``TypeError``
naming the hook's base class). :func:`check_runner_config` finds these first and says what is
wrong in one line; :func:`build_runner` turns whatever else ``Runner.from_cfg`` refuses into one
line as well. :func:`drop_training_hooks` removes the hooks a val/test run must not run.
"""
import inspect
from typing import Any, Dict, List, Optional, Sequence, Set

from ..utils.errors import UserInputError, closest_names

#: keys of a hook config that MMEngine consumes itself (not constructor arguments)
HOOK_CFG_KEYS = ('type', 'priority')


def check_runner_config(cfg: Any, config: str, loaders: Sequence[str]) -> None:
    """Raise :class:`UserInputError` (one line, naming ``config``) for a model that is not a
    ``dict(type=...)`` or whose type is not registered, a bad dataloader of ``loaders`` (not a
    dict, ``batch_size`` not a positive integer, ``num_workers`` negative), and a bad
    ``custom_hooks`` entry (see :func:`check_custom_hooks`)."""
    scope = cfg.get('default_scope', None) or 'mmengine'
    model = cfg.get('model', None)
    if not isinstance(model, dict) or 'type' not in model:
        raise UserInputError(f'config {config}: model must be a dict with a type, e.g. '
                             f'model = dict(type=\'RetinaNet\', ...); got {_short(model)}')
    _check_registered('model', model['type'], scope, config)
    for loader in loaders:
        _check_dataloader(cfg, loader, config)
    check_custom_hooks(cfg.get('custom_hooks', None), scope, config)


def _short(value: Any, n: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n - 3] + '...'


def _scoped(kind: str, scope: str):
    """The registry of ``kind`` (``'model'`` / ``'hook'``) for ``scope`` (falls back to
    MMEngine's root registry when the scope has none)."""
    from mmengine import registry as mmengine_registry
    root = mmengine_registry.MODELS if kind == 'model' else mmengine_registry.HOOKS
    import importlib
    try:
        importlib.import_module(f'{scope}.registry')
    except ImportError:
        return root
    found = root._search_child(scope)
    return found if found is not None else root


def _names(registry) -> List[str]:
    """Names a config may use in ``registry``'s scope: its own and its ancestors' modules, and
    every other scope's modules with their ``scope.`` prefix."""
    registry.import_from_location()
    names: List[str] = []
    node = registry
    while node is not None:
        names += list(node.module_dict)
        node = node.parent
    root = registry
    while root.parent is not None:
        root = root.parent
    stack = list(root.children.values())
    while stack:
        child = stack.pop()
        try:
            child.import_from_location()
        except Exception:  # an optional package that fails to import: not a candidate
            pass
        names += [f'{child.scope}.{n}' for n in child.module_dict]
        stack += list(child.children.values())
    return sorted(set(names))


def _lookup(kind: str, type_name: str, scope: str) -> Optional[type]:
    registry = _scoped(kind, scope)
    try:
        return registry.get(type_name)
    except Exception:  # e.g. ``scope.Name`` of a package that is not installed
        return None


def _check_registered(kind: str, type_name: Any, scope: str, config: str,
                      where: Optional[str] = None) -> Optional[type]:
    if not isinstance(type_name, str):
        return type_name if inspect.isclass(type_name) else None
    found = _lookup(kind, type_name, scope)
    if found is not None:
        return found
    close = closest_names(type_name, _names(_scoped(kind, scope)), n=3)
    hint = f'; did you mean {" or ".join(close)}?' if close else ''
    where = where or f'{kind} type'
    raise UserInputError(f'config {config}: {where} {type_name!r} is not registered in the '
                         f'{scope} scope{hint} (check the spelling, default_scope or '
                         'custom_imports)')


def _check_dataloader(cfg: Any, loader: str, config: str) -> None:
    dataloader = cfg.get(loader, None)
    if dataloader is None:
        return
    if not isinstance(dataloader, dict):
        raise UserInputError(f'config {config}: {loader} must be a dict(batch_size=..., '
                             f'dataset=dict(...), ...), got {_short(dataloader)}')
    batch_size = dataloader.get('batch_size', 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserInputError(f'config {config}: {loader}.batch_size must be a positive integer, '
                             f'got {_short(batch_size)} (check the config and --cfg-options)')
    workers = dataloader.get('num_workers', 0)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise UserInputError(f'config {config}: {loader}.num_workers must be an integer >= 0, '
                             f'got {_short(workers)} (check the config and --cfg-options)')
    if not isinstance(dataloader.get('dataset', None), dict):
        raise UserInputError(f'config {config}: {loader}.dataset must be a dict(type=..., ...), '
                             f'got {_short(dataloader.get("dataset", None))}')


def check_custom_hooks(hooks: Any, scope: str, config: str) -> None:
    """``custom_hooks`` is a list of ``dict(type=...)`` whose types are registered; an mmattnvis
    hook's arguments are its constructor's (``HookName.field: unknown argument; did you mean
    ...``)."""
    if hooks is None:
        return
    if not isinstance(hooks, (list, tuple)):
        raise UserInputError(f'config {config}: custom_hooks must be a list of dict(type=...), '
                             f'got {_short(hooks)}')
    for i, hook in enumerate(hooks):
        if not isinstance(hook, dict) or 'type' not in hook:
            if hasattr(hook, 'before_run'):  # a hook object, as MMEngine accepts
                continue
            raise UserInputError(f'config {config}: custom_hooks[{i}] must be dict(type=..., '
                                 f'...), got {_short(hook)}')
        cls = _check_registered('hook', hook['type'], scope, config,
                                where=f'custom_hooks[{i}]: hook type')
        if cls is not None and cls.__module__.startswith('mmattnvis.'):
            _check_hook_arguments(cls, hook)


def hook_arguments(cls: type) -> Optional[Set[str]]:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the base classes'
    ``__init__``; ``None`` when some ``**kwargs`` goes beyond them (anything may be accepted),
    or is the class's own (``kwargs_checked_by_hook = True``: the hook validates them itself,
    with the same one-line errors, e.g. ``ExplainHook``'s task options)."""
    names: Set[str] = set()
    for klass in cls.__mro__:
        init = vars(klass).get('__init__')
        if init is None:
            continue
        if klass is object:
            return names
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name != 'self'}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
        if vars(klass).get('kwargs_checked_by_hook', False):
            return None
    return None


def _check_hook_arguments(cls: type, hook: Dict[str, Any]) -> None:
    accepted = hook_arguments(cls)
    if accepted is None:
        return
    for key in hook:
        if key in HOOK_CFG_KEYS or key in accepted:
            continue
        close = closest_names(key, sorted(accepted), n=3)
        hint = f'; did you mean {" or ".join(close)}?' if close else ''
        raise UserInputError(f'{cls.__name__}.{key}: unknown argument{hint} (arguments: '
                             f'{", ".join(sorted(accepted))})')


def drop_training_hooks(cfg: Any) -> None:
    """Remove the default ``checkpoint`` hook from a val/test config, in place.

    ``CheckpointHook`` saves checkpoints during training; with ``save_best`` it also acts after a
    validation, using state (``file_backend``) that only its ``before_train`` sets, so a plain
    ``runner.val()`` on such a config (the shipped shapes configs) fails after the metrics are
    computed, before the visualisation hooks end their loop. A val/test run saves nothing.
    """
    hooks = cfg.get('default_hooks', None)
    if isinstance(hooks, dict) and hooks.get('checkpoint', None) is not None:
        hooks['checkpoint'] = None


def build_runner(cfg: Any, config: str):
    """``Runner.from_cfg(cfg)``; a config the runner refuses (MMEngine's ``TypeError``,
    ``KeyError``, ``ValueError`` or ``AssertionError``) is one :class:`UserInputError` line."""
    from mmengine.runner import Runner

    from ..utils.cli import is_user_error, one_line
    try:
        return Runner.from_cfg(cfg)
    except (TypeError, KeyError, ValueError, AssertionError) as err:
        if is_user_error(err):
            raise
        raise UserInputError(f'config {config}: the runner cannot be built from it '
                             f'({type(err).__name__}: {one_line(err)[:300]}); check the config '
                             'and --cfg-options') from None
