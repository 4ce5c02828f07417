"""The explainer task (Grad-CAM family, ODAM, D-RISE): maps per detection as result records.

``auto`` (``--method auto``, ``--target-layers auto``) is resolved here, once the model is
known (:mod:`mmattnvis.methods.auto`); the record's ``info['auto']`` says what it became.
"""
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..capture.names import resolve_module
from ..methods.auto import Recommendation, auto_layers, model_family, recommend
from ..methods.cam import FUSIONS, detect
from ..methods.explainers import DRISEOptions, build_explainer, check_method, is_black_box
from ..registry import RUNS
from ..structures import ResultRecord
from ..utils.errors import UserInputError
from .options import OptionError, check_draw_options
from .records import name_detections, new_record, sample_detections
from .run import Run, RunOptions, batch_dict

#: Hook / config field -> ``DRISEOptions`` field (the ``--drise-*`` flags and ``--seed``).
DRISE_FIELDS = {'drise_masks': 'num_masks', 'drise_grid': 'grid', 'drise_prob': 'prob',
                'drise_batch': 'batch_size', 'seed': 'seed', 'drise_sampling': 'sampling',
                'drise_tol': 'tol', 'drise_max_masks': 'max_masks', 'drise_fast': 'fast',
                'drise_region': 'region', 'occlusion_grid': 'occlusion_grid'}


@dataclass
class CAMOptions(RunOptions):
    """The ``tools/cam_vis.py`` flags.

    ``methods`` may hold ``auto`` (the recommended method and layers for the model's family);
    ``target_layers`` may be ``['auto']`` (the family's recommended layer set) or ``None``
    (``neck``; for ``auto``, its recommended layers). ``fusion`` / ``pool_stride``: how several
    layers' maps are fused (``None``: ``mean``, no pooling; with ``auto`` method or layers, the
    recommended ones).
    """
    methods: Sequence[str] = ('gradcam', )
    target_layers: Optional[Sequence[str]] = ('neck', )
    score_thr: float = 0.3
    topk: int = 5
    use_iou: bool = True
    batch_size: int = 8
    norm_in_bbox: bool = False
    drise: DRISEOptions = field(default_factory=DRISEOptions)
    colormap: str = 'jet'
    alpha: float = 0.5
    fusion: Optional[str] = None
    pool_stride: Optional[int] = None

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


@RUNS.register_module(name=['cam', 'odam', 'drise', 'occlusion'])
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
            super().__init__(model, options, cfg)  # validates
            explainers = self.build_explainers(options, progress)
        else:  # built (and so checked) by the caller
            self.model, self.options, self._cfg, self._pipeline = model, options, cfg, None
            self.dataset_meta = None
        self.auto: Optional[Recommendation] = None
        #: Per method: (name in the record, layers, explainer); ``auto`` resolved.
        self.plan: List[Tuple[str, List[str], Any]] = []
        for method, explainer in zip(options.methods, explainers):
            name, layers, fusion, pool = self._resolve(model, method)
            for layer in layers:
                try:
                    resolve_module(model, layer)
                except UserInputError as err:
                    raise OptionError('target_layers', str(err)) from None
            if explainer is None:  # needed the model (auto)
                if not is_black_box(name) and not layers:
                    raise OptionError('target_layers', 'auto found no backbone stage or neck '
                                      'in this model; name the target layers')
                explainer = build_explainer(name, layers, use_iou=options.use_iou,
                                            batch_size=options.batch_size,
                                            norm_in_bbox=options.norm_in_bbox,
                                            drise=options.drise, progress=progress,
                                            fusion=fusion, pool_stride=pool)
            self.plan.append((name, layers, explainer))
        names = [p[0] for p in self.plan]
        for i, (method, (name, layers, explainer)) in enumerate(zip(options.methods, self.plan)):
            if _is_auto(method) and names.count(name) > 1:
                self.plan[i] = ('auto', layers, explainer)  # keep record keys unique
        self.explainers = [p[2] for p in self.plan]

    def _resolve(self, model, method: str) -> Tuple[str, List[str], str, int]:
        """``(method, layers, fusion, pool stride)`` with ``auto`` resolved for ``model``."""
        opts = self.options
        layers = None if opts.target_layers is None else list(opts.target_layers)
        if _is_auto(method):
            self.auto = self.auto or recommend(model)
            rec = self.auto
            if is_black_box(rec.method):
                return rec.method, [], rec.fusion, 0
            if layers is not None and not _is_auto_layers(layers):
                rec.layers = layers  # the user's layers, the recommended method
            return rec.method, list(rec.layers), *self._fusion(rec)
        if is_black_box(method):
            return method, [], 'mean', 0
        if layers is None:
            layers = ['neck']
        elif _is_auto_layers(layers):
            family = model_family(model)
            rec = recommend(model)
            layers = auto_layers(model, family)
            if self.auto is None:
                self.auto = Recommendation(family, '', layers, rec.fusion, rec.pool_stride)
            return method, layers, *self._fusion(rec)
        return method, layers, *self._fusion(None)

    def _fusion(self, rec: Optional[Recommendation]) -> Tuple[str, int]:
        """The user's fusion and pool stride, else the recommendation's (else mean, none)."""
        opts = self.options
        fusion = opts.fusion or (rec.fusion if rec else 'mean')
        pool = opts.pool_stride if opts.pool_stride is not None else (
            rec.pool_stride if rec else 0)
        return fusion, int(pool)

    @staticmethod
    def build_explainers(options: CAMOptions, progress: bool = False) -> list:
        """Check the options and build the explainers (no model needed: call it first).
        ``auto`` needs the model: its place in the list is ``None`` (built by ``__init__``)."""
        check_draw_options(options.colormap, options.alpha, options.score_thr)
        if not options.methods:
            raise OptionError('methods', 'no method given')
        if options.fusion is not None and options.fusion not in FUSIONS:
            raise OptionError('fusion', f'unknown fusion {options.fusion!r}; choose '
                              f'{", ".join(FUSIONS)}')
        if options.pool_stride is not None and options.pool_stride < 0:
            raise OptionError('pool_stride', f'pool stride must be >= 0 (0: off), got '
                              f'{options.pool_stride}')
        layers = options.target_layers
        if layers is not None and _is_auto_layers(layers) and len(layers) > 1:
            raise OptionError('target_layers', "'auto' stands for the whole layer set; give "
                              'it alone or name the layers')
        out: List[Any] = []
        for m in options.methods:
            if _is_auto(m) or (not is_black_box(m) and layers is not None
                               and _is_auto_layers(layers)):
                if not _is_auto(m):
                    check_method(m)
                out.append(None)
                continue
            out.append(build_explainer(m, layers or ('neck', ), use_iou=options.use_iou,
                                       batch_size=options.batch_size,
                                       norm_in_bbox=options.norm_in_bbox, drise=options.drise,
                                       progress=progress, fusion=options.fusion or 'mean',
                                       pool_stride=options.pool_stride or 0))
        return out

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
        records = []
        for b, sample in enumerate(detected.samples):
            dets = sample_detections(sample, opts.score_thr, b, self.classes)
            record = new_record(sample, 'cam', dets, None,
                                {'methods': [p[0] for p in self.plan],
                                 'layers': list(dict.fromkeys(n for p in self.plan
                                                              for n in p[1])),
                                 'method_layers': {p[0]: p[1] for p in self.plan},
                                 'score_thr': opts.score_thr, 'columns': []})
            if self.auto is not None:
                record.info['auto'] = self.auto.as_dict()
            kept = detected.detections[b]
            name_detections(kept, self.classes)
            if kept:
                record.info['columns'].append({'kind': 'image', 'header': 'image-level'})
                for (method, layers, _), r in zip(self.plan, results):
                    m = r.image_maps[b]
                    m.meta.update(kind='explainer', method=method, layer=_layer(layers),
                                  column=0, aligned=True)
                    record.add_map(f'image/{method}', m)
            for j, det in enumerate(kept, start=1):
                name = det.class_name or str(det.label)
                record.info['columns'].append({'kind': 'detection', 'detection': det.rank,
                                               'header': f'{name} {det.score:.2f}'})
                for (method, layers, _), r in zip(self.plan, results):
                    m = r.maps[b][j - 1]
                    m.meta.update(kind='explainer', method=method, layer=_layer(layers),
                                  detection=det.rank, column=j, aligned=True)
                    record.add_map(f'd{det.rank}/{method}', m)
            records.append(record)
        return records


def _layer(layers: List[str]) -> Optional[str]:
    return ', '.join(layers) if layers else None


def _is_auto(method: str) -> bool:
    return method.lower() == 'auto'


def _is_auto_layers(layers: Sequence[str]) -> bool:
    return any(str(n).lower() == 'auto' for n in layers)
