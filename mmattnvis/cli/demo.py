"""The README's demo on the project's own trained models (shipped with the package).

1. Feature maps: the neck (three FPN levels) of the shipped YOLOv5-n, with its detections
   (without MMYOLO installed: of the shipped RetinaNet, an MMDet model).
2. Attention: for each detection of the shipped DINO, the sampling points of its last decoder
   layer's deformable cross-attention (weighted, coloured by level) and where they concentrate.

Both run on the shipped demo images and write PNGs under ``--out-dir``::

    mmattnvis demo --out-dir outputs/demo
"""
import os.path as osp
import sys
import time
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmattnvis.utils.cli import OneLineArgumentParser, cli_main  # noqa: E402


def parse_args(argv=None):
    parser = OneLineArgumentParser(description='Render the README demo with the shipped models')
    parser.add_argument('--out-dir', default=osp.join('outputs', 'demo'),
                        help='where the figures go (default: outputs/demo)')
    parser.add_argument('--images', default=None,
                        help='image file or folder (default: the shipped demo images)')
    parser.add_argument('--device', default='cpu', help='device (default: cpu)')
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    from mmattnvis.apis.model import has_mmyolo
    from mmattnvis.cli import attn_vis, featmap_vis
    from mmattnvis.utils.package_data import data_path

    images = args.images or data_path('demo', 'images')
    out = args.out_dir
    featmap_model = 'yolov5_n_shapes' if has_mmyolo() else 'retinanet_r18w32_fpn_shapes'
    if not has_mmyolo():
        print("MMYOLO is not installed: feature maps of the shipped RetinaNet instead of the "
              "YOLOv5-n (pip install 'mmattnvis[mmyolo]' for the README's)")
    t0 = time.time()
    rc = featmap_vis.main([
        images, f'mmattnvis::shapes/{featmap_model}.py', f'mmattnvis::shapes/{featmap_model}.pth',
        '--target-layers', 'neck', '--channel-reduction', 'squeeze_mean', '--device', args.device,
        '--out-dir', osp.join(out, 'featmaps')
    ])
    if rc != 0:
        return rc
    rc = attn_vis.main([
        images, 'mmattnvis::shapes/dino_slim_shapes.py', 'mmattnvis::shapes/dino_slim_shapes.pth',
        '--mode', 'deformable', '--layers', '-1', '--max-queries', '4', '--score-thr', '0.3',
        '--device', args.device, '--cell-width', '256', '--out-dir', osp.join(out, 'attention')
    ])
    if rc == 0:
        print(f'demo done in {time.time() - t0:.1f} s: feature maps in '
              f'{osp.join(out, "featmaps")}/, DINO attention in {osp.join(out, "attention")}/')
    return rc


if __name__ == '__main__':
    sys.exit(main())
