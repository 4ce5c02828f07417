# DETR-R50 (MMDet): the last backbone stage (the encoder's input).
_base_ = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'

custom_hooks = [
    dict(
        type='mmattnvis.FeatMapVisHook',
        target_layers=['backbone'],
        channel_reduction='select_max',
        interval=50,
        max_samples=20),
]
