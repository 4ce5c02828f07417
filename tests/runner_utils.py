"""Small runner configs on synthetic COCO-format data for the hook tests."""
import os.path as osp
import uuid

from mmengine.config import Config

from mmattnvis.apis.model import load_config, strip_pretrained
from mmattnvis.datasets import generate_shapes_dataset, shapes_metainfo


def make_dataset(root, num_images=8, seed=0):
    ann = generate_shapes_dataset(str(root), num_images=num_images, seed=seed)
    return str(root), ann


def runner_cfg(config, data_root, ann_file, work_dir, custom_hooks=None, scale=160, batch_size=2,
               vis_backends=None, seed=0) -> Config:
    """``config`` (an mmdet/mmyolo config or path) set up to test on the shapes data.

    ``custom_hooks=None`` keeps the config's own hooks (minus EMA, which needs training).
    """
    cfg = load_config(config)
    scope = cfg.get('default_scope', 'mmdet')
    meta = shapes_metainfo()
    cfg.model = strip_pretrained(cfg.model)
    head = cfg.model.bbox_head
    if 'head_module' in head:
        head.head_module.num_classes = len(meta['classes'])
    else:
        head.num_classes = len(meta['classes'])
    # random weights score everything alike: cap the NMS work so tests stay fast
    test_cfg = cfg.model.get('test_cfg', None) or cfg.model.bbox_head.get('test_cfg', None)
    if test_cfg is not None:
        test_cfg.nms_pre = min(test_cfg.get('nms_pre', 1000), 1000)
        test_cfg.max_per_img = min(test_cfg.get('max_per_img', 100), 100)
    pipeline = cfg.test_dataloader.dataset.pipeline
    for t in pipeline:
        if 'scale' in t:
            t['scale'] = (scale, scale)
    dataset = dict(
        type=cfg.test_dataloader.dataset.type,
        data_root=data_root,
        ann_file=osp.basename(ann_file),
        data_prefix=dict(img='images/'),
        metainfo=meta,
        test_mode=True,
        pipeline=pipeline)
    cfg.test_dataloader = dict(
        batch_size=batch_size,
        num_workers=0,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dataset)
    cfg.test_evaluator = dict(
        type='mmdet.CocoMetric' if scope != 'mmdet' else 'CocoMetric', ann_file=ann_file,
        metric='bbox', format_only=False)
    cfg.test_cfg = dict(type='TestLoop')
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator', 'train_cfg', 'val_cfg',
                'optim_wrapper', 'param_scheduler'):
        cfg.pop(key, None)
    if custom_hooks is None:
        custom_hooks = [h for h in cfg.get('custom_hooks', []) or []
                        if 'EMA' not in str(h.get('type', ''))]
    cfg.custom_hooks = [dict(h) for h in custom_hooks]
    cfg.default_hooks = dict(
        timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=1000))
    cfg.load_from = None
    cfg.resume = False
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=seed)
    cfg.log_level = 'WARNING'
    cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
                       dist_cfg=dict(backend='gloo'))
    vis_type = 'mmdet.DetLocalVisualizer' if scope != 'mmdet' else 'DetLocalVisualizer'
    # a unique name: MMEngine returns an existing visualizer instance of the same name
    cfg.visualizer = dict(type=vis_type, name=f'vis_{uuid.uuid4().hex[:8]}',
                          vis_backends=vis_backends or [dict(type='LocalVisBackend')])
    return cfg


def train_cfg(config, train_data, val_data, work_dir, custom_hooks, epochs=2, scale=160,
              batch_size=2, vis_backends=None, seed=0) -> Config:
    """A shipped shapes ``config`` set up to train ``epochs`` short epochs on generated data,
    validating (and checkpointing) after every epoch."""
    cfg = load_config(config)
    for key, (root, ann) in (('train_dataloader', train_data), ('val_dataloader', val_data)):
        loader = cfg[key]
        loader.batch_size = batch_size
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = root
        loader.dataset.ann_file = osp.basename(ann)
        loader.dataset.data_prefix = dict(img='images/')
        loader.dataset.pop('filter_cfg', None)
        for t in loader.dataset.pipeline:
            if 'scale' in t:
                t['scale'] = (scale, scale)
    cfg.val_evaluator = dict(type='CocoMetric', ann_file=val_data[1], metric='bbox')
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg.pop(key, None)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=1)
    cfg.param_scheduler = []
    cfg.custom_hooks = [dict(h) for h in custom_hooks]
    cfg.default_hooks = dict(
        timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=1000),
        param_scheduler=dict(type='ParamSchedulerHook'),
        checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2),
        sampler_seed=dict(type='DistSamplerSeedHook'))
    cfg.load_from = None
    cfg.resume = False
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.log_level = 'WARNING'
    cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
                       dist_cfg=dict(backend='gloo'))
    cfg.visualizer = dict(type='DetLocalVisualizer', name=f'vis_{uuid.uuid4().hex[:8]}',
                          vis_backends=vis_backends or [dict(type='LocalVisBackend')])
    return cfg


def assert_same_row(a: dict, b: dict, tol: float) -> None:
    """Two faithfulness rows equal key by key (floats within ``tol``), the wall time aside."""
    for key, value in a.items():
        if key == 'seconds':  # wall time of the method, not a result
            continue
        if isinstance(value, float):
            assert abs(value - b[key]) < tol, key
        else:
            assert value == b[key], key
