# YOLOv5-n (MMYOLO) with neck feature maps drawn during val/test.
#   python tools/test.py configs/featmap/yolov5_n_neck_featmap.py CHECKPOINT --out-dir vis
_base_ = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'

custom_hooks = [
    dict(
        type='mmattnvis.FeatMapVisHook',
        target_layers=['neck'],
        channel_reduction='squeeze_mean',
        interval=50,
        max_samples=20,
        score_thr=0.3,
        out_dir=None),
]
