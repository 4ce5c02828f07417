"""The README's demo: feature maps of the project's own trained YOLOv5-n.

Renders the neck (three FPN levels) of the shipped YOLOv5-n trained on synthetic shapes
(``models/shapes/yolov5_n_shapes``) on the demo images in ``demo/`` into ``outputs/demo/``.
"""
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))


def main() -> int:
    import featmap_vis
    out_dir = osp.join(ROOT, 'outputs', 'demo', 'featmaps')
    t0 = time.time()
    rc = featmap_vis.main([
        osp.join(ROOT, 'demo', 'images'),
        osp.join(ROOT, 'configs', 'shapes', 'yolov5_n_shapes.py'),
        osp.join(ROOT, 'models', 'shapes', 'yolov5_n_shapes', 'weights.pth'),
        '--target-layers', 'neck',
        '--channel-reduction', 'squeeze_mean',
        '--device', 'cpu',
        '--out-dir', out_dir,
    ])
    if rc == 0:
        print(f'demo done in {time.time() - t0:.1f} s: feature maps in {out_dir}/')
    return rc


if __name__ == '__main__':
    sys.exit(main())
