"""Small DETR-family models built from MMDet's configs (random weights, ResNet-18, 2+2 layers)."""
from mmattnvis.apis import init_model

DETR_FAMILY = {
    'detr': 'mmdet::detr/detr_r50_8xb2-150e_coco.py',
    'conditional_detr': 'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py',
    'dab_detr': 'mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py',
    'deformable_detr': 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    'dino': 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
}
DEFORMABLE = ('deformable_detr', 'dino')


def small_detr(name: str, scale: int = 192, layers: int = 2, queries: int = 30):
    """A CPU-sized model of the family ``name``: ResNet-18, ``layers`` encoder and decoder
    layers, ``queries`` queries, test images resized to at most ``scale`` px."""
    deformable = name in DEFORMABLE
    opts = {
        'model.backbone.depth': 18,
        'model.neck.in_channels': [128, 256, 512] if deformable else [512],
        'model.encoder.num_layers': layers,
        'model.decoder.num_layers': layers,
        'model.num_queries': queries,
        'model.test_cfg.max_per_img': queries,
        'test_dataloader.dataset.pipeline.1.scale': (scale, scale),
    }
    if name == 'dino':
        opts['model.dn_cfg.group_cfg.num_dn_queries'] = 10
    model = init_model(DETR_FAMILY[name], None, cfg_options=opts)
    return model
