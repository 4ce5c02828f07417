import os
import os.path as osp
import sys

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.abspath(osp.join(ROOT, '..', 'shared'))
SHARED_IMAGES = osp.join(SHARED, 'fixtures', 'images')
YOLOV5N_WEIGHTS = osp.join(SHARED, 'fixtures', 'weights', 'yolov5n_mmyolo.pth')
YOLOV5N_CONFIG = 'mmyolo::yolov5/yolov5_n-v61_syncbn_fast_8xb16-300e_coco.py'
DETR_CONFIG = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'
RETINANET_CONFIG = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'

os.environ.setdefault('MPLBACKEND', 'Agg')

needs_shared = pytest.mark.skipif(
    not osp.isfile(YOLOV5N_WEIGHTS),
    reason='../shared/fixtures is absent (real photos and YOLOv5-n weights live there)')


@pytest.fixture
def shared_images():
    if not osp.isdir(SHARED_IMAGES):
        pytest.skip('../shared/fixtures/images is absent')
    return SHARED_IMAGES


def hook_count(model):
    """Forward, forward-pre and backward hooks registered on any module of ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


def square_image(h=240, w=400, box=(60, 40, 120, 100), value=255, bg=0):
    """A dark BGR image with a bright square at box=(x0, y0, x1, y1)."""
    img = np.full((h, w, 3), bg, np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = value
    return img


@pytest.fixture(scope='session')
def yolov5_random():
    from mmattnvis.apis import init_model
    return init_model(YOLOV5N_CONFIG, None, device='cpu')


@pytest.fixture(scope='session')
def yolov5_real():
    if not osp.isfile(YOLOV5N_WEIGHTS):
        pytest.skip('../shared/fixtures/weights/yolov5n_mmyolo.pth is absent')
    from mmattnvis.apis import init_model
    return init_model(YOLOV5N_CONFIG, YOLOV5N_WEIGHTS, device='cpu')


@pytest.fixture(scope='session')
def retinanet_small():
    from mmattnvis.apis import init_model
    opts = {
        'test_dataloader.dataset.pipeline.1.scale': (320, 320),
    }
    return init_model(RETINANET_CONFIG, None, device='cpu', cfg_options=opts)


@pytest.fixture(autouse=True)
def _mmlogger_streams_follow_capture():
    """MMLogger keeps the sys.stdout of the moment it was created; pytest swaps (and closes)
    captured streams between tests, so point existing stream handlers at the current ones."""
    import logging

    from mmengine.logging import MMLogger
    for logger in list(MMLogger._instance_dict.values()):
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and getattr(handler.stream, 'closed', False):
                handler.stream = sys.stdout
    yield
