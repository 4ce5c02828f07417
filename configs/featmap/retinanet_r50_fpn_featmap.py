# RetinaNet-R50-FPN (MMDet): every FPN level's maps, top-4 channels in a 2x2 grid.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_hooks = [
    dict(
        type='mmattnvis.FeatMapVisHook',
        target_layers=['neck'],
        channel_reduction=None,
        topk=4,
        arrangement=(2, 2),
        interval=50,
        max_samples=20),
]
