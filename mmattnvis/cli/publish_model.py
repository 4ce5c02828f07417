"""Turn a training checkpoint into a small weights-only file for shipping.

Keeps only the model state dict (EMA weights where training used EMAHook, as MMEngine saves them
in ``state_dict``), optionally as float16, plus simple metadata; the result loads with
``torch.load(..., weights_only=True)``.

    python tools/publish_model.py work_dirs/x/best.pth models/shapes/x.pth --fp16 --config CFG
"""
import hashlib
import os
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main  # noqa: E402


@cli_main
def main(argv=None) -> int:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    parser.add_argument('--fp16', action='store_true', help='store floating tensors as float16')
    parser.add_argument('--config', default='', help='config the weights belong to (metadata)')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='training checkpoints hold optimizer state and message hubs that '
                        'need full unpickling; only for your own checkpoints')
    args = parser.parse_args(argv)
    import torch

    from mmattnvis.utils.checkpoint import extract_state_dict, read_checkpoint
    ckpt = read_checkpoint(args.checkpoint, unsafe=args.unsafe_load)
    state = extract_state_dict(ckpt, args.checkpoint)
    if args.fp16:
        state = type(state)((k, v.half() if v.is_floating_point() else v)
                            for k, v in state.items())
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    classes = meta.get('dataset_meta', {}).get('classes') if isinstance(meta, dict) else None
    out_meta = {'config': args.config, 'source': osp.basename(args.checkpoint)}
    if classes:
        out_meta['dataset_meta'] = {'classes': list(classes)}
        palette = meta['dataset_meta'].get('palette')
        if palette:
            out_meta['dataset_meta']['palette'] = [list(p) for p in palette]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save({'state_dict': dict(state), 'meta': out_meta}, args.out)
    torch.load(args.out, weights_only=True)  # must load safely
    digest = hashlib.sha256(open(args.out, 'rb').read()).hexdigest()[:16]
    size = osp.getsize(args.out) / 2**20
    print(f'{args.out}: {len(state)} tensors, {size:.2f} MiB, sha256 {digest}...')
    return 0


if __name__ == '__main__':
    sys.exit(main())
