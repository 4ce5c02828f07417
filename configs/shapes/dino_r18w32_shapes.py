# WORK IN PROGRESS (not shipped yet). A first version (3 levels, 3+3 layers, 100 queries, 256 px)
# ran at 3.0 s/iteration on 2 cores; this slim one (2 levels, 2+3 layers, 50 queries, 192 px)
# runs at 0.47 s/iteration, i.e. about 29 min for 10 epochs.
# DINO (MMDet) with a half-width ResNet-18, 2 feature levels, slim layers, trained
# from scratch on synthetic shapes. DINO is the DETR-family model chosen for CPU training: its
# denoising queries, two-stage query selection and deformable attention converge in far fewer
# epochs than DETR / Conditional DETR, and deformable attention keeps the cost low.
#   python tools/train.py configs/shapes/dino_r18w32_shapes.py
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

num_classes = 4
img_scale = (192, 192)
max_epochs = 10
embed_dims = 256  # DINO's decoder hard-codes 128 sine features per coordinate (=256 dims)
data_root = 'data/shapes/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star'),
    palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 170, 0)])

model = dict(
    num_queries=50,
    backbone=dict(
        depth=18,
        base_channels=32,
        out_indices=(2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[128, 256], out_channels=embed_dims, num_outs=2),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_levels=2),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512))),
    decoder=dict(
        num_layers=3,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_levels=2),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512))),
    positional_encoding=dict(num_feats=embed_dims // 2),
    bbox_head=dict(num_classes=num_classes, embed_dims=embed_dims),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=10)),
    test_cfg=dict(max_per_img=100))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
_dataset = dict(type='CocoDataset', data_root=data_root, metainfo=metainfo)
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        ann_file='train/annotations.json',
        data_prefix=dict(img='train/images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline,
        **_dataset))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        ann_file='val/annotations.json',
        data_prefix=dict(img='val/images/'),
        test_mode=True,
        pipeline=test_pipeline,
        **_dataset))
test_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        ann_file='test/annotations.json',
        data_prefix=dict(img='test/images/'),
        test_mode=True,
        pipeline=test_pipeline,
        **_dataset))
val_evaluator = dict(ann_file=data_root + 'val/annotations.json')
test_evaluator = dict(ann_file=data_root + 'test/annotations.json')

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0004, weight_decay=0.0001),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs,
         T_max=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
default_hooks = dict(
    checkpoint=dict(interval=5, max_keep_ckpts=1, save_best='coco/bbox_mAP_50'),
    logger=dict(interval=50))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False)
