"""The head-ablation task: detections with attention heads turned off, as result records."""
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from ..capture.attention import check_detr_family
from ..methods.ablation import (
    HeadAblation,
    all_heads,
    compare_detections,
    first_k_heads,
    single_head,
)
from ..registry import RUNS
from ..structures import Detection, ResultRecord
from ..utils.errors import UserInputError
from ..utils.validate import check_within
from .inference import run_test_step
from .options import OptionError
from .records import new_record, sample_detections
from .run import Run, RunOptions, batch_dict

PARTS = ('decoder_cross', 'decoder_self', 'encoder')

COLUMNS = ('variant', 'detections', 'kept', 'lost', 'gained', 'mean_score_change',
           'min_score_change')


@dataclass
class AblationOptions(RunOptions):
    """The ``tools/head_ablation.py`` flags."""
    part: str = 'decoder_cross'
    score_thr: float = 0.3
    iou_thr: float = 0.5

    def validate(self) -> None:
        if self.part not in PARTS:
            raise OptionError('part', f'unknown part {self.part!r}; choose {", ".join(PARTS)}')
        for field in ('score_thr', 'iou_thr'):
            try:
                check_within('--' + field.replace('_', '-'), getattr(self, field), 0.0, 1.0)
            except UserInputError as err:
                raise OptionError(field, str(err)) from None


@RUNS.register_module(name='ablation')
class AblationRun(Run):
    """Detections of a DETR-family model with all heads on, the first k heads off (k = 1..H)
    and each single head off, in every layer of ``part``.

    Each record's detections are those with all heads on; ``info['settings']`` holds, per
    setting, its name, the heads turned off, its detections and its comparison row (kept, lost,
    gained, score changes against all heads on).
    """

    task = 'ablation'
    options_class = AblationOptions

    def __init__(self, model, options: AblationOptions, cfg: Any = None) -> None:
        super().__init__(model, options, cfg)
        try:
            check_detr_family(model)
        except UserInputError as err:
            raise OptionError('part', str(err)) from None
        part = options.part
        heads = all_heads(model, part)
        if not heads:
            raise OptionError('part', f'{type(model).__name__} has no {part} attention')
        self.part = part
        self.score_thr = options.score_thr
        self.iou_thr = options.iou_thr
        self.n_layers = len(heads)
        self.n_heads = max(heads.values())
        self.variants: List[Tuple[str, Dict]] = [('all heads on', {})]
        self.variants += [(f'first {k} off', first_k_heads(model, k, part))
                          for k in range(1, self.n_heads + 1)]
        self.variants += [(f'head {h} off', single_head(model, h, part))
                          for h in range(self.n_heads)]

    def run_batch(self, inputs, data_samples) -> List[ResultRecord]:
        """One forward per setting over the batch; one record per image."""
        data = batch_dict(inputs, data_samples)
        classes = self.classes
        per_variant = []
        for _, plan in self.variants:
            with HeadAblation(self.model, plan):
                per_variant.append(run_test_step(self.model, data))
        records = []
        for b in range(len(data_samples)):
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
                                None,
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
