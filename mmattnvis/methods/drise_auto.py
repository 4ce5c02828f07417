"""D-RISE with fewer forward passes: mask sampling schemes and a convergence rule.

* **Sampling schemes** (``--drise-sampling``), all giving masks of :class:`~.drise.RandomMasks`'
  kind (a ``grid x grid`` keep pattern, upsampled bilinearly and shifted by less than a cell):

  - ``random``: :class:`~.drise.RandomMasks` itself (plain D-RISE; same seed, same masks).
  - ``antithetic``: masks in pairs ``(u, 1 - u)`` of the uniforms that decide the cells, with
    the same shift: at ``p = 0.5`` the second mask is the complement of the first, so every
    pixel is covered exactly once per pair and the coverage noise of plain D-RISE (pixels that
    happen to be kept more often get more weight) vanishes.
  - ``sobol``: the cells' uniforms and the two shift offsets from one scrambled Sobol
    sequence (``torch.quasirandom.SobolEngine``, ``grid**2 + 2`` dimensions): every cell is
    kept in a share ``p`` of the masks up to ``O(log N / N)`` and the shifts are stratified.
  - ``sobol-antithetic``: Sobol points in antithetic pairs.

  Antithetic pairs remove the coverage noise but, for the part of a detection's score that is
  linear in the mask, the pair's second weight mirrors the first (``w(1 - M) = c - w(M)``), so
  a pair carries the information of one mask for two forward passes; centring removes the
  coverage noise for free. Measured (tests, benchmarks/results.md): centred ``sobol`` needs the
  fewest masks, antithetic schemes about twice as many; ``sobol`` is the default of ``auto``.

  Every mask is still distributed as in plain D-RISE (each cell kept with probability ``p``,
  the shift uniform), so every scheme estimates the same map; they differ in how fast.
* **Convergence** (``--drise-masks auto``): the map is checked every ``check_every`` masks; its
  *change* at ``N`` masks is ``1 - Pearson`` between the running map at ``N`` and the running
  map at the last checkpoint ``<= N / 2`` (maps downsampled to at most 64 px, the largest
  change over the image's targets). The map at ``N / 2`` rather than the previous checkpoint:
  successive running maps share all but a few masks, so their change shrinks as ``1 / N`` even
  where the map is far from converged, while the map at ``N / 2`` is as far from the map at
  ``N`` as the latter is from its limit (for ``N`` i.i.d. masks, ``1 - Pearson(S_N, S_N/2)``
  is about ``1 - Pearson(S_N, S_inf)``). D-RISE stops once the change is below ``tol`` at
  ``patience`` checkpoints in a row, or at ``max_masks``.
* The running map of ``auto`` is centred (each mask's weight minus the running mean weight, as
  ``vision-explanation-methods`` does): every mask covers each pixel with expectation ``p``, so
  the centred and the plain weighted sums have the same limit up to an affine map, i.e. the same
  normalised map, and centring removes the coverage noise of random masks for free.
"""
import math
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.errors import UserInputError
from .drise_core import (
    Predictions,
    RandomMasks,
    accumulate,
    check_drise_options,
    fill_tensor,
)

SAMPLINGS = ('random', 'antithetic', 'sobol', 'sobol-antithetic')
AUTO_SAMPLING = 'sobol'  # chosen by benchmarks/bench_drise_convergence.py
SNAPSHOT_SIZE = 64


class SampledMasks(RandomMasks):
    """``n`` seeded masks of a sampling scheme (see the module docstring), made batch by batch.

    Args:
        n: Number of masks.
        grid: Cells per side.
        prob: Probability that a cell is kept.
        shape: ``(h, w)`` of the region the masks cover.
        seed: Seed of the uniforms (torch generator, or the Sobol scramble).
        sampling: One of :data:`SAMPLINGS`; ``random`` gives :class:`~.drise.RandomMasks`' masks.
    """

    def __init__(self, n: int, grid: int, prob: float, shape: Tuple[int, int], seed: int = 0,
                 sampling: str = 'random') -> None:
        check_sampling(sampling)
        super().__init__(n, grid, prob, shape, seed)  # checks, cell size, the random masks
        self.sampling = sampling
        if sampling == 'random':
            return
        g2 = self.grid * self.grid
        pairs = sampling.endswith('antithetic')
        k = (self.n + 1) // 2 if pairs else self.n
        if sampling.startswith('sobol'):
            engine = torch.quasirandom.SobolEngine(g2 + 2, scramble=True, seed=int(seed))
            u = engine.draw(k, dtype=torch.float64)
        else:
            u = torch.rand(k, g2 + 2, generator=torch.Generator().manual_seed(int(seed)),
                           dtype=torch.float64)
        cells, offsets = u[:, :g2], u[:, g2:]
        if pairs:  # (u, 1 - u) for the cells, the same shift
            cells = torch.stack([cells, 1.0 - cells], 1).reshape(2 * k, g2)
            offsets = offsets.repeat_interleave(2, 0)
        self.grids = (cells[:self.n] < self.prob).reshape(self.n, 1, self.grid, self.grid)
        cell = torch.tensor(self.cell, dtype=torch.float64)
        self.shifts = torch.minimum((offsets[:self.n] * cell).long(), (cell - 1).long())


def check_sampling(sampling: str) -> None:
    if sampling not in SAMPLINGS:
        raise UserInputError(f'--drise-sampling {sampling!r} is unknown; use one of '
                             f'{", ".join(SAMPLINGS)}')


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (0 when either is flat)."""
    a = np.asarray(a, np.float64).ravel() - np.mean(a)
    b = np.asarray(b, np.float64).ravel() - np.mean(b)
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else 0.0


class ConvergenceMonitor:
    """The stopping rule of ``--drise-masks auto`` (see the module docstring).

    Args:
        tol: Largest change (``1 - Pearson``) at which the map counts as converged.
        patience: Checkpoints in a row the change must stay below ``tol``.
        min_masks: No stop before this many masks.

    Attributes:
        history: ``(n, change)`` per checkpoint (``change`` is ``nan`` before there is a
            checkpoint at or below ``n / 2``).
        target_changes: Each target's own change at the last checkpoint (the rule stops on
            the largest; each map's metadata reports its own).
    """

    def __init__(self, tol: float, patience: int = 2, min_masks: int = 100) -> None:
        if not 0.0 < float(tol) < 1.0:
            raise UserInputError(f'--drise-tol must be in (0, 1), got {tol}')
        self.tol, self.patience, self.min_masks = float(tol), int(patience), int(min_masks)
        self.snapshots: List[Tuple[int, np.ndarray]] = []
        self.history: List[Tuple[int, float]] = []
        self.below = 0
        self.target_changes: List[float] = []

    @property
    def change(self) -> float:
        """The last measured change (``nan`` before the first comparison)."""
        return self.history[-1][1] if self.history else float('nan')

    def update(self, n: int, maps: np.ndarray) -> bool:
        """Record the running maps ``(T, h, w)`` after ``n`` masks; ``True``: stop here."""
        maps = np.asarray(maps, np.float64)
        half = [m for k, m in self.snapshots if k <= n / 2]
        self.snapshots.append((int(n), maps))
        if not half:
            self.history.append((int(n), float('nan')))
            return False
        self.target_changes = [1.0 - pearson(a, b) for a, b in zip(maps, half[-1])]
        change = max(self.target_changes, default=0.0)
        self.history.append((int(n), change))
        self.below = self.below + 1 if change <= self.tol else 0
        return self.below >= self.patience and n >= self.min_masks


def snapshot(acc: torch.Tensor, mask_sum: torch.Tensor, weight_sum: torch.Tensor, n: int,
             shape: Tuple[int, int]) -> np.ndarray:
    """Centred running maps ``(T, h', w')`` (at most :data:`SNAPSHOT_SIZE` px a side)."""
    sal = acc - (weight_sum / max(n, 1))[:, None] * mask_sum[None]
    sal = sal.reshape(-1, 1, *shape)
    size = (min(shape[0], SNAPSHOT_SIZE), min(shape[1], SNAPSHOT_SIZE))
    return F.adaptive_avg_pool2d(sal, size)[:, 0].double().cpu().numpy()


def drise_saliency_auto(predict: Callable[[torch.Tensor], List[Predictions]],
                        image: torch.Tensor, region: Tuple[int, int, int, int],
                        targets: Predictions, masks: RandomMasks, monitor: ConvergenceMonitor,
                        batch_size: int = 16, fill=0.0, check_every: int = 50,
                        progress: bool = False) -> Tuple[torch.Tensor, int, bool]:
    """Centred D-RISE saliency over the first masks of ``masks`` until ``monitor`` says the
    maps converged (checked every ``check_every`` masks) or the masks run out.

    Returns:
        ``(T, h, w)`` raw saliency, the number of masks used and whether the maps converged.
    """
    y0, y1, x0, x1 = region
    if (y1 - y0, x1 - x0) != (masks.h, masks.w):
        raise ValueError(f'masks are {masks.h}x{masks.w}, region is {y1 - y0}x{x1 - x0}')
    if batch_size < 1:
        raise UserInputError(f'--drise-batch must be >= 1, got {batch_size}')
    device = image.device
    fill = fill_tensor(fill, image)
    n_t, shape = targets.boxes.shape[0], (masks.h, masks.w)
    acc = torch.zeros(n_t, masks.h * masks.w, device=device)
    mask_sum = torch.zeros(masks.h * masks.w, device=device)
    weight_sum = torch.zeros(n_t, device=device)
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(masks))
    n, converged = 0, False
    while n < len(masks) and not converged:
        chunk_end = min(n + check_every, len(masks))
        accumulate(predict, image, region, targets, masks, fill, (n, chunk_end), batch_size,
                   (acc, mask_sum, weight_sum), bar)
        n = chunk_end
        converged = monitor.update(n, snapshot(acc, mask_sum, weight_sum, n, shape))
    acc -= (weight_sum / n)[:, None] * mask_sum[None]
    if progress:
        state = (f'converged, change {monitor.change:.4f} <= tol {monitor.tol:g}' if converged
                 else f'not converged at the cap, change {monitor.change:.4f}; '
                 f'{sum(c <= monitor.tol for c in monitor.target_changes)} of '
                 f'{len(monitor.target_changes)} maps converged')
        print(f'\nD-RISE auto: {n} masks ({state})', flush=True)
    return acc.reshape(n_t, *shape), n, converged


def make_masks(n: int, grid: int, prob: float, shape: Tuple[int, int], seed: int = 0,
               sampling: Optional[str] = None) -> RandomMasks:
    """:class:`~.drise.RandomMasks` for ``random`` / ``None``, else :class:`SampledMasks`."""
    if sampling in (None, 'random'):
        return RandomMasks(n, grid, prob, shape, seed)
    check_drise_options(n, grid, prob, shape)
    return SampledMasks(n, grid, prob, shape, seed, sampling)


__all__ = ['SAMPLINGS', 'AUTO_SAMPLING', 'SampledMasks', 'ConvergenceMonitor', 'pearson',
           'drise_saliency_auto', 'make_masks', 'check_sampling']
