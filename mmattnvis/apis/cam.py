"""The explainer task (Grad-CAM family, ODAM, D-RISE): maps per detection as result records."""
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

import numpy as np

from ..capture.names import resolve_module
from ..methods.cam import detect
from ..methods.explainers import DRISEOptions, build_explainer
from ..registry import RUNS
from ..structures import ResultRecord
from ..utils.errors import UserInputError
from .options import OptionError, check_draw_options
from .records import name_detections, new_record, sample_detections
from .run import Run, RunOptions, batch_dict

#: Hook / config field -> ``DRISEOptions`` field (the ``--drise-*`` flags and ``--seed``).
DRISE_FIELDS = {'drise_masks': 'num_masks', 'drise_grid': 'grid', 'drise_prob': 'prob',
                'drise_batch': 'batch_size', 'seed': 'seed'}


@dataclass
class CAMOptions(RunOptions):
    """The ``tools/cam_vis.py`` flags."""
    methods: Sequence[str] = ('gradcam', )
    target_layers: Sequence[str] = ('neck', )
    score_thr: float = 0.3
    topk: int = 5
    use_iou: bool = True
    batch_size: int = 8
    norm_in_bbox: bool = False
    drise: DRISEOptions = field(default_factory=DRISEOptions)
    colormap: str = 'jet'
    alpha: float = 0.5

    def validate(self) -> None:
        CAMRun.build_explainers(self)

    @classmethod
    def from_fields(cls, **fields: Any) -> 'CAMOptions':
        """Options from CLI-like fields: ``method`` (one name or a list), ``no_iou``,
        ``drise_masks``, ``drise_grid``, ``drise_prob``, ``drise_batch``, ``seed`` too."""
        if 'method' in fields:
            method = fields.pop('method')
            fields['methods'] = [method] if isinstance(method, str) else list(method)
        if 'no_iou' in fields:
            fields['use_iou'] = not fields.pop('no_iou')
        drise = {DRISE_FIELDS[k]: fields.pop(k) for k in list(fields) if k in DRISE_FIELDS}
        if isinstance(fields.get('target_layers'), str):
            fields['target_layers'] = [fields['target_layers']]
        options = super().from_fields(**fields)
        options.drise = DRISEOptions(**drise)
        return options


@RUNS.register_module(name=['cam', 'odam', 'drise'])
class CAMRun(Run):
    """Explainers of a model's detections: one record per image with, per method, an
    image-level map and one map per kept detection (all on the original image's grid).

    Raises:
        UserInputError: Unknown method or layer, bad drawing options (before any image).
    """

    task = 'cam'
    options_class = CAMOptions
    needs_grad = True

    def __init__(self, model, options: CAMOptions, progress: bool = False,
                 explainers: Optional[list] = None, cfg: Any = None) -> None:
        if explainers is None:
            super().__init__(model, options, cfg)  # validates (builds the explainers once)
        else:  # built (and so checked) by the caller
            self.model, self.options, self._cfg, self._pipeline = model, options, cfg, None
        self.explainers = explainers or self.build_explainers(options, progress)
        if any(m.lower() != 'drise' for m in options.methods):
            for name in options.target_layers:
                try:
                    resolve_module(model, name)
                except UserInputError as err:
                    raise OptionError('target_layers', str(err)) from None

    @staticmethod
    def build_explainers(options: CAMOptions, progress: bool = False) -> list:
        """Check the options and build the explainers (no model needed: call it first)."""
        check_draw_options(options.colormap, options.alpha, options.score_thr)
        if not options.methods:
            raise OptionError('methods', 'no method given')
        return [build_explainer(m, options.target_layers, use_iou=options.use_iou,
                                batch_size=options.batch_size, norm_in_bbox=options.norm_in_bbox,
                                drise=options.drise, progress=progress)
                for m in options.methods]

    def run_images(self, images_bgr: Sequence[np.ndarray],
                   paths: Optional[Sequence[str]] = None, on_method=None) -> List[ResultRecord]:
        """:meth:`run_batch` on images (BGR); ``on_method()`` after each method (progress)."""
        self._on_method = on_method
        try:
            return super().run_images(images_bgr, paths)
        finally:
            self._on_method = None

    def run_batch(self, inputs, data_samples, on_method=None) -> List[ResultRecord]:
        """Explain the kept detections of a batch; ``on_method()`` is called after each method
        (progress)."""
        on_method = on_method or getattr(self, '_on_method', None)
        opts = self.options
        data = batch_dict(inputs, data_samples)
        detected = detect(self.model, data, opts.score_thr, opts.topk)  # shared by the methods
        results = []
        for cam in self.explainers:
            results.append(cam.explain(self.model, detected=detected))
            if on_method is not None:
                on_method()
        layers = ', '.join(opts.target_layers)
        records = []
        for b, sample in enumerate(detected.samples):
            dets = sample_detections(sample, opts.score_thr, b, self.classes)
            record = new_record(sample, 'cam', dets, None,
                                {'methods': list(opts.methods), 'layers': list(opts.target_layers),
                                 'score_thr': opts.score_thr, 'columns': []})
            kept = detected.detections[b]
            name_detections(kept, self.classes)
            if kept:
                record.info['columns'].append({'kind': 'image', 'header': 'image-level'})
                for method, r in zip(opts.methods, results):
                    m = r.image_maps[b]
                    m.meta.update(kind='explainer', method=method, layer=_layer(method, layers),
                                  column=0, aligned=True)
                    record.add_map(f'image/{method}', m)
            for j, det in enumerate(kept, start=1):
                name = det.class_name or str(det.label)
                record.info['columns'].append({'kind': 'detection', 'detection': det.rank,
                                               'header': f'{name} {det.score:.2f}'})
                for method, r in zip(opts.methods, results):
                    m = r.maps[b][j - 1]
                    m.meta.update(kind='explainer', method=method, layer=_layer(method, layers),
                                  detection=det.rank, column=j, aligned=True)
                    record.add_map(f'd{det.rank}/{method}', m)
            records.append(record)
        return records


def _layer(method: str, layers: str) -> Optional[str]:
    return None if method.lower() == 'drise' else layers
