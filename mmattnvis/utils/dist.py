"""Distributed runs on CPU-only machines (gloo) under MMEngine's ``pytorch`` launcher.

MMEngine 0.10.7 calls ``torch.cuda.set_device`` when it initialises the ``pytorch`` launcher and
passes ``device_ids=[LOCAL_RANK]`` to DDP, both of which fail without a GPU. On such machines the
tools initialise the gloo process group themselves (MMEngine then skips its own init) and wrap the
model with :class:`CPUFriendlyDDP`.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm

from ..registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUFriendlyDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that works for CPU modules: no ``device_ids``, and
    SyncBatchNorm (GPU-only; MMYOLO detectors convert to it when world size > 1) reverted to
    BatchNorm, which is the same computation in eval mode."""

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        if not torch.cuda.is_available() or next(module.parameters()).device.type == 'cpu':
            device_ids = None
            kwargs.pop('output_device', None)
            module = revert_sync_batchnorm(module)
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def prepare_cpu_distributed(cfg) -> bool:
    """For ``launcher='pytorch'`` without CUDA: start gloo and use :class:`CPUFriendlyDDP`.

    Returns:
        Whether the CPU path was taken.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
    wrapper['type'] = 'mmattnvis.CPUFriendlyDDP'
    wrapper.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper
    return True
