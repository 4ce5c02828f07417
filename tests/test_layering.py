"""The package's layers import only downward, and no module grows past 400 lines.

Every ``import`` of every module under ``mmattnvis/`` (also those inside functions and
``TYPE_CHECKING`` blocks) is read with :mod:`ast`; nothing is imported.
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Set, Tuple

import pytest

from conftest import ROOT

PACKAGE = osp.join(ROOT, 'mmattnvis')
MAX_LINES = 400
#: Importable from every layer: the registries (they import only MMEngine) and the version.
GROUND = {'registry', 'version'}
#: Per layer, the layers of ours it must not import. ``structures`` is the ground floor: it
#: imports nothing else of ours. ``utils`` and ``compat`` sit beside each other on it (patches
#: use utils' helpers; utils' checkpoint reader uses compat's allow-list of MMEngine objects).
#: ``sinks`` write results: structures and utils only.
#: The shells (``cli``, ``hooks``) reach everything through ``apis``.
SHELL = {'apis', 'structures', 'utils', 'registry'}
ALLOWED_ONLY: Dict[str, Set[str]] = {
    'structures': set(),
    'utils': {'structures', 'compat'},
    'compat': {'utils'},
    'sinks': {'structures', 'utils'},
    'render': {'structures', 'utils'},
    'metrics': {'structures', 'utils', 'render'},
    'capture': {'structures', 'utils', 'compat'},
    'methods': {'structures', 'utils', 'compat', 'capture', 'render', 'metrics'},
    'visualization': {'structures', 'utils', 'compat', 'render', 'methods', 'capture'},
    'report': {'structures', 'utils', 'render', 'sinks'},
    'datasets': {'structures', 'utils'},
    'models': set(),
    'apis': {'structures', 'utils', 'compat', 'capture', 'render', 'sinks', 'methods',
             'metrics', 'visualization', 'report', 'datasets', 'models'},
    'zoo': {'structures', 'utils', 'compat', 'capture', 'render', 'methods', 'visualization',
            'apis', 'datasets', 'models'},
    'cli': SHELL,
    'hooks': SHELL,
}
FORBIDDEN: Dict[str, Set[str]] = {}
#: Modules still over :data:`MAX_LINES` that are being reworked elsewhere (issue 15's ``Run``
#: per task). Empty this list as they shrink; nothing else may be added to it.
TOO_LONG_FOR_NOW: Set[str] = set()
#: Upward imports being removed elsewhere (issue 15: render functions take maps, so
#: ``render/featmap.py`` stops calling a method). Nothing else may be added.
KNOWN_UPWARD: Set[Tuple[str, str]] = {
    # shells still reaching past apis (issue 25); drop an entry when its import goes through apis.
    # The zoo sweep sits above apis (it loads models through apis), so apis cannot route to it.
    ('mmattnvis/cli/zoo_check.py', 'mmattnvis'),
}


def _modules() -> List[Tuple[str, List[str]]]:
    """``(path relative to the repo, dotted name parts)`` of every module of the package."""
    out = []
    for dirpath, dirnames, filenames in os.walk(PACKAGE):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(('.', '__')))
        for name in sorted(filenames):
            if name.endswith('.py'):
                path = osp.join(dirpath, name)
                rel = osp.relpath(path, ROOT)
                parts = rel[:-3].split(os.sep)
                out.append((rel.replace(os.sep, '/'), parts))
    return out


def _imports(path: str, parts: List[str]) -> List[Tuple[int, str]]:
    """``(line, absolute module name)`` of every ``mmattnvis`` import in the file."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = parts[:-1]  # a module's package; an ``__init__``'s is the package itself
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                prefix = '.'.join(base + ([node.module] if node.module else []))
                names = ([f'{prefix}.{a.name}' for a in node.names] if node.module is None
                         else [prefix])
            else:
                names = [node.module or '']
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split('.')[0] == 'mmattnvis']
    return found


def _layer(parts: List[str]) -> str:
    return parts[1] if len(parts) > 2 else parts[-1]


def _violations() -> List[Tuple[str, int, str]]:
    """``(module path, line, imported name)`` of every import a layer rule forbids."""
    bad = []
    for rel, parts in _modules():
        src = _layer(parts)
        for line, name in _imports(osp.join(ROOT, rel), parts):
            dst = name.split('.')[1] if '.' in name else '<package root>'
            if dst == src or dst in GROUND:
                continue
            if (src in ALLOWED_ONLY and dst not in ALLOWED_ONLY[src]) or \
                    dst in FORBIDDEN.get(src, ()):
                bad.append((rel, line, name))
    return bad


def test_layers_import_only_downward():
    bad = [f'{rel}:{line} imports {name}' for rel, line, name in _violations()
           if (rel, name) not in KNOWN_UPWARD]
    assert not bad, 'imports from a lower layer to a higher one:\n' + '\n'.join(bad)


def test_known_upward_list_holds_only_upward_imports():
    """An entry leaves the list as soon as its import is gone."""
    found = {(rel, name) for rel, _, name in _violations()}
    assert KNOWN_UPWARD <= found, f'fixed, drop from KNOWN_UPWARD: {KNOWN_UPWARD - found}'


def test_every_layer_has_a_rule():
    """A new layer (a folder under ``mmattnvis/``) needs its rule before it can be imported."""
    layers = {_layer(parts) for _, parts in _modules()}
    top_level = {'__init__', '__main__', 'setup_env'}  # the package's own entry modules
    missing = layers - set(ALLOWED_ONLY) - set(FORBIDDEN) - GROUND - top_level
    assert not missing, f'layers without a rule in tests/test_layering.py: {sorted(missing)}'


def test_shells_import_only_apis_structures_utils_registry():
    """``cli`` and ``hooks`` are thin: they reach capture, methods, render... through apis;
    ``apis`` never imports a shell."""
    assert ALLOWED_ONLY['cli'] == ALLOWED_ONLY['hooks'] == SHELL
    assert not {'cli', 'hooks'} & ALLOWED_ONLY['apis']
    tools = osp.join(ROOT, 'tools')
    for name in sorted(os.listdir(tools)):
        if name.endswith('.py'):
            for _, imported in _imports(osp.join(tools, name), ['tools', name[:-3]]):
                layer = imported.split('.')[1] if '.' in imported else ''
                assert layer in SHELL | {'cli'}, f'tools/{name} imports {imported}'


def _module_graph() -> Dict[str, Set[str]]:
    """Module -> the modules of ours it imports (``from a.b import c`` counts ``a.b`` and, when
    it is a module, ``a.b.c``)."""
    names = {}
    for rel, parts in _modules():
        dotted = parts[:-1] if parts[-1] == '__init__' else parts
        names['.'.join(dotted)] = (rel, parts)
    graph: Dict[str, Set[str]] = {}
    for name, (rel, parts) in names.items():
        with open(osp.join(ROOT, rel)) as f:
            tree = ast.parse(f.read(), rel)
        package = parts[:-1]
        found: Set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = '.'.join(package[:len(package) - node.level + 1]
                                    + ([node.module] if node.module else []))
                else:
                    base = node.module or ''
                found |= {base} | {f'{base}.{a.name}' for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {n for n in found if n in names and n != name}
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    cycles = _cycles(_module_graph())
    assert not cycles, 'import circles: ' + '; '.join(' <-> '.join(c) for c in cycles)


def test_circle_detector_finds_a_circle():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert _cycles(graph) == [['a', 'b', 'c']]


def test_relative_imports_are_resolved():
    """The resolver itself: a relative import two levels up from a subpackage module."""
    got = _imports(osp.join(PACKAGE, 'methods', 'cam', 'detection_cam.py'),
                   ['mmattnvis', 'methods', 'cam', 'detection_cam'])
    names = {n for _, n in got}
    assert 'mmattnvis.capture.names' in names and 'mmattnvis.methods.base' in names


@pytest.mark.parametrize('rel', [rel for rel, _ in _modules()])
def test_module_size(rel):
    with open(osp.join(ROOT, rel)) as f:
        lines = sum(1 for _ in f)
    if rel in TOO_LONG_FOR_NOW:
        pytest.skip(f'{rel} ({lines} lines) is being split elsewhere')
    assert lines <= MAX_LINES, f'{rel} has {lines} lines (at most {MAX_LINES})'


def test_too_long_list_holds_only_long_modules():
    """An entry leaves the allowlist as soon as its module is short enough."""
    for rel in TOO_LONG_FOR_NOW:
        with open(osp.join(ROOT, rel)) as f:
            assert sum(1 for _ in f) > MAX_LINES, f'{rel} is short now: drop it from the list'
