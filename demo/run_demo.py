"""The README's demo: feature maps on the project's demo image.

Renders the neck (FPN) maps of a RetinaNet-R18 built from MMDetection's config on
``demo/shapes_demo.png`` into ``outputs/demo/``. Until the project's own trained models are shipped
the weights are random (nothing is downloaded), so the maps show the architecture's receptive
fields rather than learned objects.
"""
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))


def main() -> int:
    import featmap_vis
    out_dir = osp.join(ROOT, 'outputs', 'demo')
    t0 = time.time()
    rc = featmap_vis.main([
        osp.join(ROOT, 'demo', 'shapes_demo.png'),
        'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
        'none',
        '--target-layers', 'backbone', 'neck',
        '--channel-reduction', 'squeeze_mean',
        '--device', 'cpu',
        '--out-dir', out_dir,
        '--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(640,640)',
    ])
    if rc == 0:
        print(f'demo done in {time.time() - t0:.1f} s: {out_dir}/shapes_demo.png')
    return rc


if __name__ == '__main__':
    sys.exit(main())
