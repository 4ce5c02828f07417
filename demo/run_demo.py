"""The README's demo on the project's own trained models (``models/shapes/``).

1. Feature maps: the neck (three FPN levels) of the shipped YOLOv5-n, with its detections.
2. Attention: for each detection of the shipped DINO, the sampling points of its last decoder
   layer's deformable cross-attention (weighted, coloured by level) and where they concentrate.

Both run on the demo images in ``demo/images/`` and write PNGs under ``outputs/demo/``.
"""
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))
MODELS = osp.join(ROOT, 'models', 'shapes')
CONFIGS = osp.join(ROOT, 'configs', 'shapes')


def main() -> int:
    import attn_vis
    import featmap_vis
    images = osp.join(ROOT, 'demo', 'images')
    out = osp.join(ROOT, 'outputs', 'demo')
    t0 = time.time()
    rc = featmap_vis.main([
        images, osp.join(CONFIGS, 'yolov5_n_shapes.py'),
        osp.join(MODELS, 'yolov5_n_shapes', 'weights.pth'),
        '--target-layers', 'neck', '--channel-reduction', 'squeeze_mean', '--device', 'cpu',
        '--out-dir', osp.join(out, 'featmaps')
    ])
    if rc != 0:
        return rc
    rc = attn_vis.main([
        images, osp.join(CONFIGS, 'dino_slim_shapes.py'),
        osp.join(MODELS, 'dino_slim_shapes', 'weights.pth'),
        '--mode', 'deformable', '--layers', '-1', '--max-queries', '4', '--score-thr', '0.3',
        '--device', 'cpu', '--cell-width', '256', '--out-dir', osp.join(out, 'attention')
    ])
    if rc == 0:
        print(f'demo done in {time.time() - t0:.1f} s: feature maps in {out}/featmaps/, '
              f'DINO attention in {out}/attention/')
    return rc


if __name__ == '__main__':
    sys.exit(main())
