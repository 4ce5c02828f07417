# Watch the shapes DINO learn where to look: after every validation, the AttentionVisHook draws
# 4 fixed val images; at the end of training it writes, per image, an evolution figure (a column
# per epoch, a row per ground-truth shape: the last decoder layer's deformable sampling points of
# the query Hungarian-matched to it) and a GIF, and logs the share of matched queries whose
# attention peaks inside their ground-truth box (mmattnvis/attn_in_box) to the vis backends.
#   python tools/make_shapes.py --out-dir data/shapes/train --num-images 3000 --seed 0
#   python tools/make_shapes.py --out-dir data/shapes/val --num-images 300 --seed 1
#   python tools/train.py configs/evolution/dino_slim_shapes_evolution.py
# Output: work_dirs/dino_slim_shapes_evolution/evolution/{val,evolution/AttentionVisHook}/
_base_ = '../shapes/dino_slim_shapes.py'

train_cfg = dict(val_interval=1)
default_hooks = dict(checkpoint=dict(interval=4))
custom_hooks = [
    dict(
        type='mmattnvis.AttentionVisHook',
        mode='deformable',
        fixed_samples=4,
        max_queries=4,
        out_dir='evolution'),
]
