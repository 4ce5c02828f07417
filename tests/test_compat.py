"""Each patch in mmattnvis.compat was written for a library version and for the code it relies on;
these tests fail loudly when the installed library changes that code."""
import gc
import importlib
import pkgutil

import pytest

import mmattnvis.compat as compat

MODULES = [m.name for m in pkgutil.iter_modules(compat.__path__)]
PACKAGE_OF = {'mmengine': 'mmengine', 'mmdet': 'mmdet', 'mmyolo': 'mmyolo', 'torch': 'torch',
              'pytorch_grad_cam': 'grad-cam'}


@pytest.mark.parametrize('name', MODULES)
def test_patched_code_is_what_the_patch_was_written_for(name):
    mod = importlib.import_module(f'mmattnvis.compat.{name}')
    assert mod.FINGERPRINTS, f'{name} names no code it relies on'
    for qualname, expected in mod.FINGERPRINTS.items():
        got = compat.source_fingerprint(qualname)
        assert got == expected, (
            f'{qualname} changed (sha1 {got}, patch written for {expected}, versions '
            f'{mod.TESTED_VERSIONS}): re-check mmattnvis/compat/{name}.py')


@pytest.mark.parametrize('name', MODULES)
def test_installed_version_is_a_tested_one(name):
    from importlib.metadata import version
    mod = importlib.import_module(f'mmattnvis.compat.{name}')
    root = next(iter(mod.FINGERPRINTS)).split('.')[0]
    assert version(PACKAGE_OF.get(root, root)) in mod.TESTED_VERSIONS


def test_loop_wrapper_detaches_and_restores():
    from mmengine.runner import BaseLoop

    from mmattnvis.compat.mmengine_loop import unwrap_loop_run, wrap_loop_run

    class Loop(BaseLoop):
        def __init__(self):
            self.calls = 0

        def run(self):
            self.calls += 1
            raise RuntimeError('x')

    loop, seen = Loop(), []
    wrap_loop_run(loop, lambda: seen.append(1))
    wrap_loop_run(loop, lambda: seen.append(2))  # wrapping twice is a no-op
    with pytest.raises(RuntimeError):
        loop.run()
    assert seen == [1] and loop.calls == 1
    unwrap_loop_run(loop)
    assert 'run' not in loop.__dict__


# -- the weights-only loading of MMEngine runner checkpoints -------------------------------
import inspect  # noqa: E402

import mmengine  # noqa: E402
import torch  # noqa: E402

from mmattnvis.compat import mmengine_checkpoint as ckpt_compat  # noqa: E402


def test_mmengine_local_loader_unchanged():
    """``safe_runner_checkpoints`` replaces MMEngine's local loader; if MMEngine changes that
    function (e.g. passes ``weights_only`` itself), this fails and the patch must be revisited."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
    assert mmengine.__version__ == ckpt_compat.WRITTEN_FOR['mmengine']
    assert ckpt_compat._source_sha256(load_from_local) == ckpt_compat.LOAD_FROM_LOCAL_SHA256
    assert CheckpointLoader._schemes[''] is load_from_local
    assert 'checkpoint_loader(filename, map_location)' in inspect.getsource(
        CheckpointLoader.load_checkpoint)


def test_history_buffer_state_is_what_the_allow_list_expects():
    """HistoryBuffer pickles its statistics methods (hence the restricted ``getattr``)."""
    from mmengine.logging import HistoryBuffer
    assert torch.__version__.startswith(ckpt_compat.WRITTEN_FOR['torch'])
    state = HistoryBuffer([1.0], [1]).__getstate__()
    assert set(state['statistics_methods']) >= {'min', 'max', 'current', 'mean'}
    for name, fn in state['statistics_methods'].items():
        assert ckpt_compat._history_buffer_method(HistoryBuffer, name) is fn


def test_restricted_getattr_refuses_everything_else(tmp_path):
    import pickle

    import pytest
    from mmengine.logging import HistoryBuffer
    with pytest.raises(pickle.UnpicklingError):
        ckpt_compat._history_buffer_method(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        ckpt_compat._history_buffer_method(torch, 'load')
    # a weights-only load of a history buffer round-trips inside the context, not outside
    path = tmp_path / 'hb.pth'
    buf = HistoryBuffer([1.0, 2.0], [1, 1])
    torch.save({'hb': buf}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    with ckpt_compat.allow_runner_checkpoint_globals():
        loaded = torch.load(path, weights_only=True)['hb']
    assert loaded.mean() == buf.mean()


# -- MMDet dense heads that keep the graph, grad-cam's recorder, DetLocalVisualizer ---------
def test_dense_heads_keep_graph_per_instance_and_restored():
    from mmdet.models.dense_heads import RetinaHead
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope

    from mmattnvis.compat.mmdet_dense_head import DenseHeadsKeepGraph
    init_default_scope('mmdet')
    head = RetinaHead(num_classes=2, in_channels=4, feat_channels=4, stacked_convs=1,
                      anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                            scales_per_octave=1, ratios=[1.0], strides=[4, 8]))
    model = torch.nn.Sequential(head)
    feats = [torch.rand(1, 4, 8, 8, requires_grad=True), torch.rand(1, 4, 4, 4)]
    cls_scores, bbox_preds = head(feats)
    metas = [dict(img_shape=(32, 32), scale_factor=(1.0, 1.0), ori_shape=(32, 32))]
    cfg = ConfigDict(nms_pre=100, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                     max_per_img=10)
    detached = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas, cfg=cfg)
    assert not detached[0].scores.requires_grad  # MMDet's own: cut off from the network
    with DenseHeadsKeepGraph(model):
        assert 'predict_by_feat' in vars(head)  # the instance only, not the class
        kept = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas, cfg=cfg)
    assert 'predict_by_feat' not in vars(head)
    assert kept[0].scores.requires_grad
    assert torch.equal(kept[0].scores.detach(), detached[0].scores)
    assert torch.equal(kept[0].bboxes.detach(), detached[0].bboxes)


def test_replace_recorder_releases_grad_cams_hooks():
    from pytorch_grad_cam import GradCAM

    from mmattnvis.compat.grad_cam import replace_recorder
    conv = torch.nn.Conv2d(3, 2, 3)
    cam = GradCAM(torch.nn.Sequential(conv), [conv])
    assert conv._forward_hooks  # grad-cam hooks the layer when the CAM is built
    class Recorder:
        released = 0

        def release(self):  # grad-cam releases its recorder when the CAM is deleted
            self.released += 1

    recorder = Recorder()
    assert replace_recorder(cam, recorder) is recorder
    assert cam.activations_and_grads is recorder and not conv._forward_hooks
    assert recorder.released == 0
    del cam
    gc.collect()
    assert recorder.released == 1  # the swapped-in recorder is the one grad-cam releases


def test_draw_instances_draws_boxes():
    import numpy as np
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData

    from mmattnvis.compat.mmdet_visualizer import draw_instances
    vis = DetLocalVisualizer(name='compat_draw_instances')
    image = np.zeros((48, 64, 3), np.uint8)
    vis.set_image(image)
    inst = InstanceData(bboxes=torch.tensor([[4.0, 4.0, 40.0, 30.0]]), labels=torch.tensor([0]))
    out = draw_instances(vis, image, inst, ('thing', ), [(255, 0, 0)])
    assert out.shape == (48, 64, 3) and out.any()


def test_checkpoint_schemes_is_mmengines_table():
    from mmengine.runner.checkpoint import load_from_local
    assert ckpt_compat.checkpoint_schemes()[''] is load_from_local


def test_without_init_info_restores_mmengine():
    from mmengine.model import BaseModule, base_module, weight_init

    from mmattnvis.compat.mmengine_init import without_init_info

    class Net(BaseModule):
        def __init__(self):
            super().__init__(init_cfg=dict(type='Constant', layer='Conv2d', val=0.5))
            self.conv = torch.nn.Conv2d(1, 1, 1)

    net, saved = Net(), (base_module.update_init_info, weight_init.update_init_info)
    with without_init_info(net):
        net.init_weights()
    assert torch.all(net.conv.weight == 0.5)
    assert (base_module.update_init_info, weight_init.update_init_info) == saved
    assert all('_params_init_info' not in m.__dict__ for m in net.modules())
