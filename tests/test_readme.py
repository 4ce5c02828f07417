"""The README is executed: every Python block runs, every shell command of the project's tools
parses with that tool's own argument parser (stale flags fail here), and the commands that are
cheap enough run as a user types them.

Python blocks run in order in one namespace, as a reader would paste them into one session.
"""
import os.path as osp
import re
import shlex
import subprocess
import sys

from conftest import ROOT

README = osp.join(ROOT, 'README.md')

# Placeholders of the README's shell commands -> what a test passes for them.
SHIPPED_CFG = 'mmattnvis::shapes/yolov5_n_shapes.py'
SHIPPED_PTH = 'mmattnvis::shapes/yolov5_n_shapes.pth'


def _blocks(lang: str):
    text = open(README, encoding='utf-8').read()
    return re.findall(rf'```{lang}\n(.*?)```', text, re.S)


def _commands():
    """Each shell command of the README's ``bash`` blocks (continuations joined, comments off)."""
    out = []
    for block in _blocks('bash'):
        joined = block.replace('\\\n', ' ')
        for line in joined.splitlines():
            line = line.split('  #')[0].split(' # ')[0].strip()
            if line and not line.startswith('#'):
                out.append(line)
    return out


def test_readme_has_python_blocks_and_commands():
    assert len(_blocks('python')) >= 3
    assert len(_commands()) >= 10


def test_python_blocks_run(tmp_path, monkeypatch):
    """Every ```python block, in order, in one namespace (shipped models, demo images)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {'__name__': '__readme__'}
    for i, block in enumerate(_blocks('python')):
        try:
            exec(compile(block, f'README.md python block {i}', 'exec'), namespace)
        except Exception as err:  # name the block in the failure
            raise AssertionError(f'README python block {i} fails: {type(err).__name__}: {err}\n'
                                 f'{block}') from err
        if 'custom_hooks' in namespace:  # a config snippet: its hooks must build
            from mmengine.registry import HOOKS

            import mmattnvis  # noqa: F401
            for cfg in namespace.pop('custom_hooks'):
                hook = HOOKS.build(dict(cfg))
                assert type(hook).__name__ == cfg['type'].split('.')[-1]


def _tool_argv(cmd: str):
    """``(module, argv)`` for a command of the project's tools, else ``None``."""
    from mmattnvis.cli.main import COMMANDS
    words = shlex.split(cmd)
    if words[:1] == ['torchrun']:
        words = words[[i for i, w in enumerate(words) if w.endswith('.py')][0] - 1:]
        words[0] = 'python'
    if words[:2] == ['python', 'tools/report.py'] or (
            words[:1] == ['python'] and words[1].startswith('tools/')):
        return osp.splitext(osp.basename(words[1]))[0], words[2:]
    if words[:1] == ['mmattnvis'] and len(words) > 1 and words[1] in COMMANDS:
        return COMMANDS[words[1]][0], words[2:]
    if words[:3] == ['mim', 'run', 'mmattnvis']:
        return words[3], words[4:]
    return None


def _substitute(argv, tmp_path):
    image = osp.join(ROOT, 'demo', 'images', 'shapes_1.jpg')
    subs = {'IMG': image, 'IMAGES': osp.join(ROOT, 'demo', 'images'), 'CONFIG': SHIPPED_CFG,
            'CHECKPOINT': SHIPPED_PTH, 'RESULTS_DIR': str(tmp_path / 'results'),
            'MY_CFG': SHIPPED_CFG}
    return [subs.get(a, a) for a in argv]


def _parse(module: str, argv):
    import importlib
    mod = importlib.import_module(f'mmattnvis.cli.{module}')
    if hasattr(mod, 'parse_args'):
        return mod.parse_args(argv)
    if module in ('test', 'val'):
        from mmattnvis.apis.evaluate import parse_eval_args
        return parse_eval_args(module, argv)
    if module == 'train':  # parsed inside main(): check what it would load first
        from mmattnvis.apis import resolve_config_path
        assert osp.isfile(resolve_config_path(osp.join(ROOT, argv[0]) if not argv[0].startswith(
            ('mmattnvis::', 'mmdet::', 'mmyolo::')) else argv[0])), argv
        return None
    raise AssertionError(f'no argument parser found for the README command of {module}')


# Commands that are not the project's tools, and the test or CI step that runs each.
RUN_ELSEWHERE = {
    'make demo': 'tests/test_wheel.py runs the demo (mmattnvis demo) from the built wheel',
    'make test': 'CI (.ci/run)',
    'mmattnvis --help': 'test_cheap_readme_commands_run below',
    'pip install': 'tests/test_wheel.py installs the built wheel into a fresh venv',
    'mim install': 'tests/test_wheel.py (mim run from the installed wheel)',
}


def test_shell_commands_parse(tmp_path):
    """Each command of the project's tools parses with the tool's own parser (placeholders
    replaced by shipped models and demo images); the others are named in RUN_ELSEWHERE."""
    unknown = []
    for cmd in _commands():
        found = _tool_argv(cmd)
        if found is None:
            if not any(cmd.startswith(k) for k in RUN_ELSEWHERE):
                unknown.append(cmd)
            continue
        module, argv = found
        if argv and argv[0] in ('--help', '-h'):
            continue
        try:
            _parse(module, _substitute(argv, tmp_path))
        except SystemExit as err:
            raise AssertionError(f'README command does not parse: {cmd} ({err})') from err
    assert not unknown, f'README commands no test covers: {unknown}'


def _run(cmd, tmp_path, timeout=600):
    words = shlex.split(cmd)
    if words[0] == 'mmattnvis':
        words = [sys.executable, '-m', 'mmattnvis.cli.main'] + words[1:]
    elif words[0] == 'python':
        words = [sys.executable, osp.join(ROOT, words[1])] + words[2:]
    env = dict(__import__('os').environ, PYTHONPATH=ROOT)
    return subprocess.run(words, capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=timeout)


def test_cheap_readme_commands_run(tmp_path):
    """The README's `mmattnvis --help`, `mmattnvis demo --out-dir` and report commands, as typed
    (shipped models, demo images), do what the README says."""
    cmds = _commands()
    help_cmd = next(c for c in cmds if c.startswith('mmattnvis --help'))
    proc = _run(help_cmd.split('#')[0], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ('featmap', 'attn', 'cam', 'ablation', 'faithfulness', 'report', 'demo'):
        assert f'  {name}' in proc.stdout

    attn = next(c for c in cmds if c.startswith('mmattnvis attn IMAGES'))
    argv = shlex.split(attn.split('#')[0])
    argv = _substitute(argv, tmp_path)
    dino = 'mmattnvis::shapes/dino_slim_shapes'
    argv[argv.index('mmattnvis::shapes/yolov5_n_shapes.py')] = f'{dino}.py'
    argv[argv.index(SHIPPED_PTH)] = f'{dino}.pth'
    proc = _run(' '.join(shlex.quote(a) for a in argv) + ' --mode deformable --save-results '
                + str(tmp_path / 'results'), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert osp.isfile(tmp_path / 'report' / 'index.html')
    rep = next(c for c in cmds if c.startswith('mmattnvis report RESULTS_DIR'))
    proc = _run(' '.join(_substitute(shlex.split(rep.split('#')[0]), tmp_path))
                .replace('report/', str(tmp_path / 'report2')), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert osp.isfile(tmp_path / 'report2' / 'index.html')
    # the page loads its records from data files next to index.html
    texts = [p.read_text(encoding='utf-8', errors='replace')
             for p in (tmp_path / 'report2').rglob('*')
             if p.is_file() and p.suffix in ('.html', '.js', '.json')]
    assert any('shapes_1' in t for t in texts)
