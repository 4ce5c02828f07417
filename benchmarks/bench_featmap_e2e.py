"""End to end on the real YOLOv5-n over the four photos in ../shared/fixtures/images.

Plain ``mmdet.apis.inference_detector`` vs mmattnvis' capture + reduce + align + render (the
featmap tool's work per image, without file writing). Goal: rendering adds <= 25 %.
"""
import os
import os.path as osp

from common import SHARED, paired_median_times, report

CONFIG = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'


def run(repeat: int = 7, target_layers=('backbone', )) -> dict:
    weights = osp.join(SHARED, 'weights', 'yolov5n_mmyolo.pth')
    img_dir = osp.join(SHARED, 'images')
    if not osp.isfile(weights):
        print('featmap e2e: skipped (../shared/fixtures is absent)')
        return dict(name='featmap e2e', timings='skipped: ../shared absent', ratio=float('nan'),
                    goal='<= 1.25', ok=None)
    import torch
    from mmdet.apis import inference_detector

    from mmattnvis.apis import init_model, load_image
    from mmattnvis.apis.featmap_runner import FeatMapOptions, FeatMapRun
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = init_model(CONFIG, weights, device='cpu')
    paths = sorted(osp.join(img_dir, f) for f in os.listdir(img_dir))
    images = [load_image(p) for p in paths]
    run_ = FeatMapRun(model, FeatMapOptions(target_layers=list(target_layers)))

    def plain():
        for img in images:
            inference_detector(model, img)

    def ours():
        for img, path in zip(images, paths):
            run_.render_batch([img], [path])

    t_plain, t_ours, ratio = paired_median_times(plain, ours, repeat)
    return report(f'featmap e2e, real YOLOv5-n, 4 photos, layers {",".join(target_layers)}',
                  {'inference_detector': t_plain, 'inference+capture+render': t_ours}, ratio,
                  '<= 1.25', ratio <= 1.25)


if __name__ == '__main__':
    run()
