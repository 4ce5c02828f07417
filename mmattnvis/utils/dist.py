"""Distributed runs on CPU-only machines (gloo) under MMEngine's ``pytorch`` launcher.

MMEngine 0.10.7 calls ``torch.cuda.set_device`` when it initialises the ``pytorch`` launcher and
passes ``device_ids=[LOCAL_RANK]`` to DDP, both of which fail without a GPU. On such machines the
tools initialise the gloo process group themselves (MMEngine then skips its own init) and wrap the
model with :class:`CPUFriendlyDDP`.
"""
import atexit
import datetime
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


def _destroy_process_group() -> None:
    if not torch_dist.is_initialized():
        return
    try:  # no rank closes its connections while another still talks to it
        torch_dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
    except RuntimeError:
        pass  # a rank that failed or left: tear down anyway
    torch_dist.destroy_process_group()


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
        # The group we start is ours to end, after all ranks are done: when one rank's exit
        # tore its connections down while another was still finishing, gloo aborted the
        # latter ("terminate called without an active exception", SIGABRT) after the work was
        # done, and torchrun reported the run as failed (about 1 run in 10 here).
        atexit.register(_destroy_process_group)
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
    wrapper['type'] = 'mmattnvis.CPUFriendlyDDP'
    wrapper.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper
    return True
