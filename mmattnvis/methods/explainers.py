"""Explainers by ``--method`` name: the Grad-CAM family, ``odam`` (``odam-x1`` ... for box
coordinates) and the black-box ``drise`` and ``occlusion``, all with
``explain(model, detected=...) -> CAMResult``."""
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from . import drise as _drise  # noqa: F401  (registers 'drise')
from . import occlusion as _occlusion  # noqa: F401  (registers 'occlusion')
from .base import build_method
from .cam import cam_class
from .odam import ODAM_ATTRIBUTES

#: Methods that need no target layers and no gradients (they perturb the input).
BLACK_BOX = ('drise', 'occlusion')


def is_black_box(name: str) -> bool:
    """Whether ``--method name`` perturbs the input (no layers, no gradients)."""
    return name.lower() in BLACK_BOX


@dataclass
class DRISEOptions:
    """The black-box methods' flags: ``--drise-*`` (and ``--seed``, see :class:`~.drise.DRISE`)
    and ``--occlusion-grid`` (:class:`~.occlusion.BoxOcclusion`, which shares
    ``--drise-batch``)."""
    num_masks: Union[int, str] = 1000  # or 'auto': until the map converged
    grid: int = 16
    prob: float = 0.5
    batch_size: Optional[int] = None  # 16 on a GPU, 1-4 by input size on a CPU
    seed: int = 0
    sampling: Optional[str] = None  # random for a number N, the best scheme for auto
    tol: float = 0.1
    max_masks: int = 4000
    fast: Optional[bool] = None  # inference copy for the masked passes; None: on for auto
    region: str = 'image'  # where the masks apply: the whole image or each detection's box
    occlusion_grid: int = 4  # occlusion: cells per side of each detection's box

    @classmethod
    def from_args(cls, args) -> 'DRISEOptions':
        """From the flags of :func:`~mmattnvis.utils.cli.add_drise_args` and ``--seed``."""
        return cls(args.drise_masks, args.drise_grid, args.drise_prob, args.drise_batch,
                   getattr(args, 'seed', 0), getattr(args, 'drise_sampling', None),
                   getattr(args, 'drise_tol', cls.tol), getattr(args, 'drise_max_masks',
                                                                cls.max_masks),
                   getattr(args, 'drise_fast', None), getattr(args, 'drise_region', 'image'),
                   getattr(args, 'occlusion_grid', cls.occlusion_grid))


def _odam_attribute(name: str):
    key = name.lower().replace('_', '-')
    if key == 'odam':
        return 'score'
    if key.startswith('odam-') and key[5:] in ODAM_ATTRIBUTES:
        return key[5:]
    return None


def check_method(name: str) -> None:
    """One-line error for a name that is no explainer."""
    if not is_black_box(name) and _odam_attribute(name) is None:
        cam_class(name)


def build_explainer(name: str, target_layers: Sequence[str] = ('neck', ), use_iou: bool = True,
                    batch_size: int = 8, norm_in_bbox: bool = False,
                    drise: DRISEOptions = DRISEOptions(), progress: bool = True,
                    fusion: str = 'mean', keep_layer_maps: bool = False, pool_stride: int = 0):
    """A :class:`~.drise.DRISE`, :class:`~.occlusion.BoxOcclusion`, :class:`~.odam.ODAM` or
    :class:`~.cam.DetectionCAM` for
    ``name``, built from :data:`~mmattnvis.registry.METHODS`. ``fusion``, ``pool_stride`` and
    ``keep_layer_maps``: see :class:`~.cam.DetectionCAM` (several target layers)."""
    if name.lower() == 'drise':
        return build_method(dict(type='drise', num_masks=drise.num_masks, grid=drise.grid,
                                 prob=drise.prob, batch_size=drise.batch_size,
                                 seed=drise.seed, progress=progress, sampling=drise.sampling,
                                 tol=drise.tol, max_masks=drise.max_masks,
                                 fast=drise.fast, region=drise.region))
    if name.lower() == 'occlusion':
        return build_method(dict(type='occlusion', grid=drise.occlusion_grid,
                                 batch_size=drise.batch_size))
    attribute = _odam_attribute(name)
    if attribute is not None:
        return build_method(dict(type='odam', target_layers=target_layers, attribute=attribute,
                                 batch_size=batch_size, norm_in_bbox=norm_in_bbox,
                                 fusion=fusion, keep_layer_maps=keep_layer_maps,
                             pool_stride=pool_stride))
    return build_method(dict(type='cam', method=name, target_layers=target_layers,
                             use_iou=use_iou, batch_size=batch_size, norm_in_bbox=norm_in_bbox,
                             fusion=fusion, keep_layer_maps=keep_layer_maps,
                             pool_stride=pool_stride))

__all__ = ['BLACK_BOX', 'DRISEOptions', 'build_explainer', 'check_method', 'is_black_box']
