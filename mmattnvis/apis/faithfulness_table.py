"""The faithfulness table: one row per detection and method, means per method, markdown and CSVs.

Columns (per detection; the summary averages each over the rows that have it):

* ``pointing_game`` / ``pointing_game_gt``: the map peaks inside the predicted / ground-truth
  box. Kept as a column, not a criterion: a one-cell map at the predicting anchor wins it.
* ``energy_pg``: share of the map's mass inside the predicted box; ``energy_mask``: inside the
  object's exact mask (shapes data, ``segmentation`` in the annotations).
* ``mask_iou``: IoU of the map above half its maximum with the object's mask.
* ``effective_area``: share of the predicted box where the map is above half its maximum.
* ``deletion_auc`` (lower better), ``insertion_auc`` (higher better) of the detection's D-RISE
  similarity and ``oa`` = insertion - deletion (higher better; ODExAI's overall score).
* ``box_deletion_auc``, ``box_insertion_auc``, ``box_oa`` (``--box-curves``): the same with only
  the box's pixels perturbed, cell by cell, the rest of the image left as it is. Inside the box
  the box map has nothing to order by (a random order of the cells) and a blob the size of the
  box only the distance to the centre: a map that beats the blob there shows more than "the
  object is in the middle of its box" (the blob can win where objects sit centred in their
  boxes, as on the shapes RetinaNet table).
* ``sanity_head`` / ``sanity_neck`` / ``sanity_backbone``: Spearman correlation of the map with
  the one recomputed after randomising the head, then also the neck, then also the backbone;
  ``sanity_pass``: 1 when the last one is below :data:`~mmattnvis.metrics.sanity.SANITY_THRESHOLD`;
  ``sanity_flat``: 1 when the fully randomised model left the map flat (its target, the
  best-overlapping same-class prediction, vanished; the correlation is 0 then).
* ``seconds``: the method's wall time for the image divided by its detections.
* the ODAM protocol's ``pointing_game_gt_strict``, ``odam_deletion``, ``odam_insertion``, ``odi``.
"""
import csv
import io
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..utils.fileio import write_text_atomic

COLUMNS = ('method', 'detections', 'pointing_game', 'pointing_game_gt', 'energy_pg',
           'energy_mask', 'mask_iou', 'effective_area', 'deletion_auc', 'insertion_auc', 'oa',
           'box_deletion_auc', 'box_insertion_auc', 'box_oa', 'sanity_head', 'sanity_neck',
           'sanity_backbone', 'sanity_pass', 'sanity_flat',
           'seconds',
           'pointing_game_gt_strict', 'odam_deletion', 'odam_insertion', 'odi')
#: Markdown columns: (summary key, heading, as a percentage).
_MARKDOWN = (('detections', 'detections', False), ('pointing_game', 'pointing game', True),
             ('pointing_game_gt', 'pointing game (GT)', True), ('energy_pg', 'energy PG', False),
             ('energy_mask', 'energy in mask', False), ('mask_iou', 'Mask-IoU', False),
             ('effective_area', 'effective area (box)', True),
             ('deletion_auc', 'deletion AUC (lower better)', False),
             ('insertion_auc', 'insertion AUC (higher better)', False),
             ('oa', 'OA (ins - del)', False),
             ('box_deletion_auc', 'in-box deletion', False),
             ('box_insertion_auc', 'in-box insertion', False), ('box_oa', 'in-box OA', False),
             ('sanity_backbone', 'sanity rho (all random)', False),
             ('sanity_head', 'sanity rho (head random)', False),
             ('sanity_pass', 'sanity passed', True), ('sanity_flat', 'flat when random', True),
             ('seconds', 's / detection', False),
             ('pointing_game_gt_strict', 'ODAM PG (GT, strict)', True),
             ('odam_deletion', 'ODAM deletion', False), ('odam_insertion', 'ODAM insertion', False),
             ('odi', 'ODI (lower better)', False))


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return 'n/a'
    if isinstance(v, int):
        return str(v)
    return f'{100 * v:.1f} %' if pct else f'{v:.3f}'


@dataclass
class FaithfulnessTable:
    """Per-detection rows and the per-method means."""
    rows: List[Dict[str, Any]] = field(default_factory=list)

    def methods(self) -> List[str]:
        out: List[str] = []
        for r in self.rows:
            if r['method'] not in out:
                out.append(r['method'])
        return out

    def summary(self) -> List[Dict[str, Any]]:
        """One dict per method: ``detections`` and the mean of every column (``None`` where no
        row has a value)."""
        out: List[Dict[str, Any]] = []
        for m in self.methods():
            rs = [r for r in self.rows if r['method'] == m]
            entry: Dict[str, Any] = dict(method=m, detections=len(rs))
            for key in COLUMNS[2:]:
                vals = [r[key] for r in rs if r.get(key) is not None]
                entry[key] = float(np.mean(vals)) if vals else None
            out.append(entry)
        return out

    def paired(self, a: str, b: str, key: str = 'oa', resamples: int = 10000,
               seed: int = 0) -> Optional[Dict[str, float]]:
        """Method ``a`` minus method ``b`` on column ``key``, paired by detection: the mean
        difference, its 95 % bootstrap interval (over detections, seeded) and on how many
        detections ``a`` is higher; ``None`` without a detection that has both."""
        def by_det(m: str) -> Dict[tuple, float]:
            return {(r['image'], r['detection']): float(r[key]) for r in self.rows
                    if r['method'] == m and r.get(key) is not None}
        va, vb = by_det(a), by_det(b)
        common = [d for d in va if d in vb]
        if not common:
            return None
        diff = np.array([va[d] - vb[d] for d in common])
        rng = np.random.default_rng(seed)
        means = diff[rng.integers(0, diff.size, (resamples, diff.size))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        return dict(mean=float(diff.mean()), low=float(low), high=float(high),
                    higher=int((diff > 0).sum()), n=int(diff.size))

    def markdown(self, title: str = '', skip_empty: bool = True) -> str:
        """The summary as a markdown table; columns without any value are left out."""
        summary = self.summary()
        cols = [c for c in _MARKDOWN if not skip_empty or c[0] == 'detections'
                or any(s.get(c[0]) is not None for s in summary)]
        lines = [f'### {title}', ''] if title else []
        lines += ['| method | ' + ' | '.join(c[1] for c in cols) + ' |',
                  '|' + '---|' * (len(cols) + 1)]
        for s in summary:
            lines.append(f"| {s['method']} | "
                         + ' | '.join(_fmt(s.get(k), pct) for k, _, pct in cols) + ' |')
        return '\n'.join(lines) + '\n'

    def write(self, out_dir: str, title: str = '') -> List[str]:
        """Write the markdown table and the two CSVs (atomically, see ``utils.fileio``)."""
        paths = [osp.join(out_dir, n) for n in
                 ('faithfulness.md', 'faithfulness.csv', 'faithfulness_detections.csv')]
        write_text_atomic(paths[0], self.markdown(title))
        for path, rows in ((paths[1], self.summary()), (paths[2], self.rows)):
            buf = io.StringIO(newline='')
            keys: List[str] = []
            for r in rows:
                keys += [k for k in r if k not in keys]
            writer = csv.DictWriter(buf, fieldnames=keys or list(COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
            write_text_atomic(path, buf.getvalue())
        return paths


def oa(insertion: Optional[float], deletion: Optional[float]) -> Optional[float]:
    """Insertion - deletion, or ``None`` when either is missing."""
    return None if insertion is None or deletion is None else insertion - deletion


__all__ = ['COLUMNS', 'FaithfulnessTable', 'oa']
