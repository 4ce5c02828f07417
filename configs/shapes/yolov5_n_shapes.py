# YOLOv5-n (MMYOLO) trained from scratch on synthetic shapes, 256 px, CPU-sized schedule.
# Data: tools/make_shapes.py, train 3000 images seed 0, val 300 seed 1, held-out test 300 seed 2.
#   python tools/train.py configs/shapes/yolov5_n_shapes.py
_base_ = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'

num_classes = 4
img_scale = (256, 256)
max_epochs = 20
batch_size = 16
data_root = 'data/shapes/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star'),
    palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 170, 0)])

model = dict(
    bbox_head=dict(
        head_module=dict(num_classes=num_classes),
        # YOLOv5's scaling of the loss weights by class count and image size
        loss_cls=dict(loss_weight=0.5 * (num_classes / 80)),
        loss_obj=dict(loss_weight=1.0 * (img_scale[0] / 640)**2)),
    test_cfg=dict(nms_pre=1000, max_per_img=100))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=True, pad_val=dict(img=114)),
    dict(type='YOLOv5HSVRandomAug'),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'flip', 'flip_direction'))
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=True, pad_val=dict(img=114)),
    dict(type='LoadAnnotations', with_bbox=True, _scope_='mmdet'),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'pad_param'))
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    collate_fn=dict(_delete_=True, type='yolov5_collate'),
    dataset=dict(
        _delete_=True,
        type='YOLOv5CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='train/annotations.json',
        data_prefix=dict(img='train/images/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type='YOLOv5CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        test_mode=True,
        ann_file='val/annotations.json',
        data_prefix=dict(img='val/images/'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=16,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type='YOLOv5CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        test_mode=True,
        ann_file='test/annotations.json',
        data_prefix=dict(img='test/images/'),
        pipeline=test_pipeline))
val_evaluator = dict(ann_file=data_root + 'val/annotations.json', proposal_nums=(100, 1, 10))
test_evaluator = dict(ann_file=data_root + 'test/annotations.json', proposal_nums=(100, 1, 10))

# AdamW with warm-up and cosine decay converges faster from scratch than YOLOv5's SGD recipe.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.004, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=0.0001, by_epoch=True, begin=0, end=max_epochs,
         T_max=max_epochs, convert_to_iter_based=True)
]
default_hooks = dict(
    param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'),
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best='coco/bbox_mAP_50'),
    logger=dict(interval=50))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0005, update_buffers=True,
         strict_load=False, priority=49)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
