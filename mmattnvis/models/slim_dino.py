"""DINO at any ``embed_dims``.

MMDet's ``DinoTransformerDecoder`` turns each 4-d reference box into ``4 x 128`` sine features
(``coordinate_to_encoding`` with its default ``num_feats``) but sizes the MLP that reads them as
``2 * embed_dims``, so the decoder only works at ``embed_dims=256``. ``SlimDINO`` is MMDet's DINO
with that MLP sized for the features it actually receives; everything else (denoising queries,
two-stage query selection, deformable attention, losses) is MMDet's own code. It lets the project's
shapes model use 128-d queries and fit the shipped-weights budget.
"""
import copy

from mmdet.models.detectors import DINO
from mmdet.models.layers.transformer import DinoTransformerDecoder
from mmdet.models.layers.transformer.utils import MLP

from mmattnvis.registry import MODELS

#: Sine features per box coordinate produced by ``coordinate_to_encoding``'s default.
COORD_FEATS = 128


class SlimDinoTransformerDecoder(DinoTransformerDecoder):
    """``DinoTransformerDecoder`` whose ``ref_point_head`` reads ``4 * 128`` sine features."""

    def _init_layers(self) -> None:
        super()._init_layers()
        self.ref_point_head = MLP(4 * COORD_FEATS, self.embed_dims, self.embed_dims, 2)


@MODELS.register_module()
class SlimDINO(DINO):
    """MMDet ``DINO`` that works with any ``embed_dims`` (see the module docstring)."""

    def _init_layers(self) -> None:
        # MMDet's __init__ sets ``decoder`` to its config before ``_init_layers`` builds it
        decoder_cfg = copy.deepcopy(self.decoder)  # type: ignore[has-type]
        super()._init_layers()
        self.decoder = SlimDinoTransformerDecoder(**decoder_cfg)
