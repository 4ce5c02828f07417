"""The model side of the model-randomisation sanity check (Adebayo et al., 2018).

:func:`randomised_cascade` yields copies of the detector with the head, then also the neck, then
also the backbone redrawn at random (top down, cumulative); the original model is never touched.
:func:`sanity_correlations` recomputes a method's maps on each and gives the Spearman correlation
with the original maps per stage (:func:`mmattnvis.metrics.sanity.spearman`; the pass criterion
is :func:`mmattnvis.metrics.sanity.sanity_passed`).

Each parameter tensor is redrawn from a normal distribution with the tensor's own mean and
standard deviation (seeded), so activations keep roughly their trained scale and the randomised
detector still predicts boxes whose scores carry gradients; normalisation statistics (buffers)
are kept. Parameters outside ``backbone``, ``neck`` and ``data_preprocessor`` (heads, a DETR's
encoder / decoder / query embeddings, an RPN and RoI head) are the head.
"""
import copy
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..metrics.sanity import spearman

#: Cascade order: top down.
STAGES = ('head', 'neck', 'backbone')
_NOT_HEAD = ('backbone.', 'neck.', 'data_preprocessor.')


def stage_parameters(model: nn.Module, stage: str) -> List[torch.Tensor]:
    """The parameters of ``stage`` (``head``, ``neck`` or ``backbone``) of a detector; empty when
    the model has no such part."""
    if stage not in STAGES:
        raise ValueError(f'stage must be one of {STAGES}, not {stage!r}')
    named = list(model.named_parameters())
    if stage == 'head':
        return [p for n, p in named if not n.startswith(_NOT_HEAD)]
    return [p for n, p in named if n.startswith(stage + '.')]


@torch.no_grad()
def randomise_(params: Sequence[torch.Tensor], generator: torch.Generator) -> None:
    """Redraw each tensor in place from N(its mean, its std) (a one-element tensor keeps its
    value: it has no spread to draw from)."""
    for p in params:
        if p.numel() < 2:
            continue
        mean, std = p.detach().float().mean(), p.detach().float().std()
        noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
        p.copy_((mean + std * noise).to(device=p.device, dtype=p.dtype))


def randomised_cascade(model: nn.Module, seed: int = 0,
                       stages: Sequence[str] = STAGES) -> Iterator[Tuple[str, nn.Module]]:
    """``(stage, model with that stage and every earlier one randomised)`` for each stage the
    model has, top down; one deep copy, randomised further at each step (use each copy before
    asking for the next). The original ``model`` is left unchanged."""
    gen = torch.Generator().manual_seed(int(seed))
    clone = copy.deepcopy(model)
    clone.eval()
    for stage in stages:
        params = stage_parameters(clone, stage)
        if not params:
            continue
        randomise_(params, gen)
        yield stage, clone


def _varies(sal: np.ndarray) -> bool:
    sal = np.asarray(sal, dtype=np.float64)
    return bool(np.isfinite(sal).all() and sal.max() > sal.min())


#: ``explain(model) -> one (H, W) map per detection`` (the same detections every call; ``None``
#: for a map the randomised model left nothing to compute from: its correlation is ``None``).
Explain = Callable[[nn.Module], List[Optional[np.ndarray]]]


def sanity_correlations(model: nn.Module, explainers: Dict[str, Explain],
                        originals: Dict[str, List[np.ndarray]], seed: int = 0
                        ) -> Dict[str, List[Dict[str, Optional[float]]]]:
    """Per method and detection, the Spearman correlation of the map recomputed on each stage of
    :func:`randomised_cascade` with the original map: ``{method: [{stage: rho, ..., 'flat':
    1.0 when the last stage's map is flat}, ...]}``.

    Args:
        explainers: Method name -> ``explain`` (see :data:`Explain`).
        originals: Method name -> the maps on the trained model, in the same detection order.
    """
    out: Dict[str, List[Dict[str, Optional[float]]]] = {
        m: [{} for _ in originals[m]] for m in explainers}
    for stage, randomised in randomised_cascade(model, seed):
        for method, explain in explainers.items():
            maps = explain(randomised)
            if len(maps) != len(originals[method]):
                raise RuntimeError(f'{method}: {len(maps)} maps on the randomised model for '
                                   f'{len(originals[method])} detections')
            for i, (orig, new) in enumerate(zip(originals[method], maps)):
                out[method][i][stage] = None if new is None else spearman(orig, new)
                # a map the randomised model leaves flat (its target vanished): rho is 0 then
                out[method][i]['flat'] = float(new is None or not _varies(new))
    return out


__all__ = ['STAGES', 'stage_parameters', 'randomise_', 'randomised_cascade',
           'sanity_correlations']
