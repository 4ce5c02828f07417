"""``mmattnvis <command> ...``: one entry point for the tools (installed as a console script).

Each command is a module of :mod:`mmattnvis.cli` with a ``main(argv)``; ``mmattnvis <command>
--help`` shows that tool's options.
"""
import importlib
import sys
from typing import List, Optional

# command -> (module in mmattnvis.cli, one-line summary)
COMMANDS = {
    'featmap': ('featmap_vis',
                'feature maps of any layer, aligned with the image, with predictions'),
    'attn': ('attn_vis', 'DETR-family attention per detection (decoder, encoder, deformable, '
             'relevance)'),
    'cam': ('cam_vis', 'Grad-CAM family maps per detection'),
    'ablation': ('head_ablation', 'detections with attention heads turned off'),
    'faithfulness': ('eval_faithfulness', 'pointing game and deletion/insertion AUC per method'),
    'report': ('report', 'HTML report of a results directory (gallery, maps, DETR attention)'),
    'zoo': ('zoo_check', 'check every MMDet / MMYOLO config against mmattnvis'),
    'demo': ('demo', 'the README demo on the shipped shapes models'),
    'train': ('train', 'train a detector (MMEngine Runner)'),
    'test': ('test', 'test a detector, with mmattnvis hooks in custom_hooks'),
    'val': ('val', 'validate a detector (runner.val()), with mmattnvis hooks in custom_hooks'),
}


def usage() -> str:
    """The top-level ``--help`` text."""
    width = max(map(len, COMMANDS))
    lines = ['usage: mmattnvis <command> [options]   (mmattnvis <command> --help for its options)',
             '', 'See what OpenMMLab object detectors look at.', '', 'commands:']
    lines += [f'  {name.ljust(width)}  {summary}' for name, (_, summary) in COMMANDS.items()]
    lines += [
        '',
        "Image tools take IMG CONFIG CHECKPOINT (as MMYOLO's demos) or CONFIG CHECKPOINT IMG.",
        'Shipped models: CONFIG mmattnvis::shapes/<name>.py with CHECKPOINT '
        'mmattnvis::shapes/<name>.pth,',
        '  <name>: yolov5_n_shapes (needs mmattnvis[mmyolo]), retinanet_r18w32_fpn_shapes, '
        'dino_slim_shapes;',
        '  more configs: mmattnvis::featmap/*.py.',
        'The same tools run as `mim run mmattnvis <tool>` (featmap_vis, attn_vis, cam_vis, '
        'head_ablation, ...).',
    ]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch ``argv[0]`` to its tool's ``main``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(usage())
        return 0
    if argv[0] in ('-V', '--version'):
        from mmattnvis.version import __version__
        print(f'mmattnvis {__version__}')
        return 0
    name = argv[0]
    if name not in COMMANDS:
        import difflib
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ''
        print(f"error: unknown command '{name}'{hint} (commands: {', '.join(COMMANDS)})",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f'mmattnvis.cli.{COMMANDS[name][0]}')
    prog = sys.argv[0]
    sys.argv[0] = f'mmattnvis {name}'  # argparse's prog in usage and errors
    try:
        return module.main(argv[1:]) or 0
    finally:
        sys.argv[0] = prog


if __name__ == '__main__':
    sys.exit(main())
