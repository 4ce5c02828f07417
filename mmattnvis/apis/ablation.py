"""The head-ablation task: detections with attention heads turned off, as result records."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..capture.attention import check_detr_family
from ..methods.ablation import (
    HeadAblation,
    all_heads,
    compare_detections,
    first_k_heads,
    single_head,
)
from ..structures import Detection, ResultRecord
from ..utils.errors import UserInputError
from .inference import build_test_pipeline, prepare_batch, run_test_step
from .records import new_record, sample_detections

COLUMNS = ('variant', 'detections', 'kept', 'lost', 'gained', 'mean_score_change',
           'min_score_change')


class AblationRun:
    """Detections of a DETR-family model with all heads on, the first k heads off (k = 1..H)
    and each single head off, in every layer of ``part``.

    Each record's detections are those with all heads on; ``info['settings']`` holds, per
    setting, its name, the heads turned off, its detections and its comparison row (kept, lost,
    gained, score changes against all heads on).
    """

    def __init__(self, model, part: str = 'decoder_cross', score_thr: float = 0.3,
                 iou_thr: float = 0.5) -> None:
        check_detr_family(model)
        heads = all_heads(model, part)
        if not heads:
            raise UserInputError(f'{type(model).__name__} has no {part} attention')
        self.model = model
        self.part = part
        self.score_thr = score_thr
        self.iou_thr = iou_thr
        self.n_layers = len(heads)
        self.n_heads = max(heads.values())
        self.variants: List[Tuple[str, Dict]] = [('all heads on', {})]
        self.variants += [(f'first {k} off', first_k_heads(model, k, part))
                          for k in range(1, self.n_heads + 1)]
        self.variants += [(f'head {h} off', single_head(model, h, part))
                          for h in range(self.n_heads)]
        self._pipeline = None

    def run_batch(self, images_bgr: Sequence[np.ndarray],
                  paths: Optional[Sequence[str]] = None) -> List[ResultRecord]:
        """One forward per setting over the batch; one record per image."""
        if self._pipeline is None:
            self._pipeline = build_test_pipeline(self.model.cfg)
        data = prepare_batch(images_bgr, self._pipeline, paths)
        classes = (getattr(self.model, 'dataset_meta', None) or {}).get('classes')
        per_variant = []
        for _, plan in self.variants:
            with HeadAblation(self.model, plan):
                per_variant.append(run_test_step(self.model, data))
        records = []
        for b in range(len(images_bgr)):
            base_sample = per_variant[0][b]
            base = _kept(base_sample, self.score_thr)
            settings = []
            for (name, plan), samples in zip(self.variants, per_variant):
                pred = _kept(samples[b], self.score_thr)
                row = {'variant': name, **compare_detections(base, pred, self.iou_thr)}
                dets = sample_detections(samples[b], self.score_thr, b, classes)
                settings.append({'name': name, 'heads_off': _plan(plan), 'row': row,
                                 'detections': [d.to_dict() for d in dets]})
            record = new_record(base_sample, 'ablation',
                                sample_detections(base_sample, self.score_thr, b, classes),
                                None if paths is None else paths[b],
                                {'part': self.part, 'score_thr': self.score_thr,
                                 'iou_thr': self.iou_thr, 'n_heads': self.n_heads,
                                 'n_layers': self.n_layers, 'settings': settings})
            records.append(record)
        return records


def _kept(sample, score_thr: float):
    pred = sample.pred_instances.cpu()
    return pred[pred.scores > score_thr]


def _plan(plan: Dict) -> List[Dict[str, Any]]:
    return [{'part': part, 'layer': int(layer), 'heads': [int(h) for h in heads]}
            for (part, layer), heads in plan.items()]


def setting_detections(setting: Dict[str, Any]) -> List[Detection]:
    """The detections of one ``info['settings']`` entry."""
    return [Detection.from_dict(d) for d in setting['detections']]


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The comparison rows as an aligned text table."""
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in COLUMNS]
    lines = ['  '.join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
    lines += ['  '.join(_fmt(r[c]).ljust(w) for c, w in zip(COLUMNS, widths)) for r in rows]
    return '\n'.join(lines)


def _fmt(v) -> str:
    return f'{v:+.3f}' if isinstance(v, float) else str(v)
