"""The feature-map workflow shared by ``tools/featmap_vis.py`` and the demo: thin glue over
capture -> methods -> render -> visualizer."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import MMLogger

from ..capture import FeatureCapture, describe_module_outputs
from ..methods.featmap import build_reduction, check_arrangement
from ..registry import RUNS
from ..render.layout import Sheet
from ..render.options import FigureOptions
from ..structures import ResultRecord
from ..utils.cli import check_display
from ..utils.errors import UserInputError
from ..utils.validate import check_at_least
from ..visualization.featmap_visualizer import describe
from ..visualization.figure_output import style_of, write_figure
from .image_loop import ImageLoop
from .inference import (
    bgr_to_rgb,
    collect_images,
    load_image,
    prepare_batch,
    run_test_step,
)
from .model import init_model_from_args
from .options import OptionError, check_draw_options
from .records import new_record, output_path, sample_detections
from .run import Run, RunOptions, batch_dict
from .run_sinks import RunSinks


@dataclass
class FeatMapOptions(RunOptions):
    """Drawing options (the CLI flags)."""
    target_layers: Sequence[str] = ('backbone', )
    channel_reduction: Optional[str] = 'select_max'
    topk: int = 4
    arrangement: Sequence[int] = (2, 2)
    alpha: float = 0.5
    colormap: str = 'jet'
    score_thr: float = 0.3
    align: bool = True
    batch_size: int = 1
    draw_pred: bool = True
    max_size: int = 2000
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    figure: FigureOptions = field(default_factory=FigureOptions)

    def validate(self) -> None:
        """Raise :class:`OptionError` (flag in the message, config field in ``field``) for bad
        values before any heavy work."""
        if isinstance(self.channel_reduction, str) and self.channel_reduction.lower() == 'none':
            self.channel_reduction = None
        try:
            build_reduction(self.channel_reduction, 1, (1, 1))
        except UserInputError as err:
            raise OptionError('channel_reduction', str(err)) from None
        # --topk and --arrangement are checked whatever the reduction (they are ignored by a
        # reduction to one map, but a bad value is still a mistake worth naming)
        if isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 0:
            raise OptionError('topk', f'--topk must be an integer >= 0 (0: the raw 1- or '
                              f'3-channel map with --channel-reduction None), got {self.topk!r}')
        try:
            check_arrangement(self.arrangement, 1)
            build_reduction(self.channel_reduction, self.topk, self.arrangement)
        except UserInputError as err:
            raise OptionError('arrangement', str(err)) from None
        check_draw_options(self.colormap, self.alpha, self.score_thr)
        try:
            check_at_least('--batch-size', self.batch_size, 1)
        except UserInputError as err:
            raise OptionError('batch_size', str(err)) from None
        if not self.target_layers:
            raise OptionError('target_layers', 'no target layers given')
        if self.max_size < 64:
            raise OptionError('max_size', f'max size must be >= 64 pixels, got {self.max_size}')
        self.figure.check()


@RUNS.register_module(name='featmap')
class FeatMapRun(Run):
    """The feature-map task: a model and validated options -> one result record per image.

    ``run_batch`` (images) and ``records`` (feature maps captured elsewhere, e.g. by
    :class:`~mmattnvis.hooks.FeatMapVisHook` during a runner's loop) give the same records;
    ``figure`` draws one.

    Raises:
        OptionError: Bad options or layer names, before any image is processed.
    """

    task = 'featmap'
    options_class = FeatMapOptions

    def __init__(self, model, options: FeatMapOptions, out_dir: Optional[str] = None,
                 show: bool = False, cfg: Any = None) -> None:
        from ..visualization import FeatMapVisualizer
        super().__init__(model, options, cfg)
        self.out_dir = out_dir
        self.show = show
        self.image_root: Optional[str] = None
        self.images: List[str] = []
        self.method = build_reduction(options.channel_reduction, options.topk,
                                      options.arrangement)
        # Resolve layer names now: a typo fails before any image is processed.
        try:
            FeatureCapture(model, list(options.target_layers))
        except UserInputError as err:
            raise OptionError('target_layers', str(err)) from None
        self.visualizer = FeatMapVisualizer(
            name=f'mmattnvis_featmap_{id(self)}', featmap_alpha=options.alpha,
            colormap=options.colormap)
        self.visualizer.dataset_meta = getattr(model, 'dataset_meta', None)
        self.logger = MMLogger.get_instance('mmattnvis')

    @classmethod
    def from_args(cls, args) -> 'FeatMapRun':
        options = FeatMapOptions(
            target_layers=args.target_layers,
            channel_reduction=args.channel_reduction,
            topk=args.topk,
            arrangement=args.arrangement,
            alpha=args.alpha,
            colormap=args.colormap,
            score_thr=args.score_thr,
            align=not args.no_align,
            batch_size=args.batch_size,
            max_size=getattr(args, 'max_size', 2000),
            cfg_options=args.cfg_options or {},
            figure=FigureOptions.from_args(args))
        options.validate()
        if getattr(args, 'show', False):
            check_display()
        run_images = collect_images(args.img)
        model = init_model_from_args(args)
        run = cls(model, options, out_dir=args.out_dir, show=args.show)
        run.images = run_images
        run.image_root = args.img if osp.isdir(args.img) else osp.dirname(args.img)
        return run

    # ------------------------------------------------------------------------------------------
    def preview(self, max_depth: Optional[int] = 3,
                image: Optional[np.ndarray] = None) -> List[str]:
        """Module tree with output shapes from one forward on the first image (or a dummy)."""
        if image is None:
            paths = getattr(self, 'images', None)
            image = load_image(paths[0]) if paths else np.full((480, 640, 3), 114, np.uint8)
        data = prepare_batch([image], self.pipeline)
        return describe_module_outputs(self.model, lambda: run_test_step(self.model, data),
                                       max_depth)

    def forward(self, inputs, data_samples) -> Tuple[Dict[str, Any], list]:
        """One forward over a test-pipeline batch with the layers captured:
        ``({name: (N, C, H, W)}, samples)``."""
        opts = self.options
        data = batch_dict(inputs, data_samples)
        with FeatureCapture(self.model, list(opts.target_layers)) as cap:
            results = run_test_step(self.model, data)
        if cap.missing():
            raise UserInputError(f"layer(s) {', '.join(cap.missing())} did not run during "
                                 'inference; choose layers on the test path (see --preview-model)')
        featmaps = cap.featmaps()
        if not featmaps:
            shapes = {k: tuple(v.shape) for k, v in cap.tensors().items()}
            raise UserInputError(f'no (N, C, H, W) feature map among the outputs of '
                                 f"{', '.join(opts.target_layers)}: {shapes}")
        return featmaps, results

    def records(self, featmaps: Dict[str, Any], samples: Sequence[Any],
                paths: Optional[Sequence[str]] = None) -> List[ResultRecord]:
        """One record per sample from captured feature maps (the CLI and the hook share this).

        Each captured map ``name`` (``neck.0``...) gives one reduced map, or one per top-k
        channel (``name/ch<c>``), on the feature grid.
        """
        opts = self.options
        # a hook sets the visualizer's meta from its runner's dataset (the model has none there)
        meta = self.visualizer.dataset_meta or getattr(self.model, 'dataset_meta', None) or {}
        classes = meta.get('classes')
        out = []
        for i, sample in enumerate(samples):
            dets = sample_detections(sample, opts.score_thr, i, classes)
            record = new_record(sample, 'featmap', dets, None if paths is None else paths[i],
                                {'method': describe(self.method), 'align': opts.align,
                                 'score_thr': opts.score_thr})
            for name, fm in featmaps.items():
                if i >= fm.shape[0]:
                    continue
                maps = self.method.compute(fm[i])
                for m in maps:
                    m.meta.update(kind='featmap', layer=name, method=self.method.name,
                                  shape=[int(v) for v in fm.shape[1:]])
                    key = name if len(maps) == 1 else f"{name}/ch{m.meta.get('channel')}"
                    record.add_map(key, m)
            out.append(record)
        return out

    def run_batch(self, inputs, data_samples) -> List[ResultRecord]:
        """Forward one batch and return one result record per image."""
        featmaps, samples = self.forward(inputs, data_samples)
        return self.records(featmaps, samples)

    def figure_sheet(self, record: ResultRecord, image_rgb: np.ndarray) -> Sheet:
        """The figure of one record as a :class:`Sheet` (a titled panel per captured map)."""
        opts = self.options
        cells = 1 if opts.channel_reduction is not None or opts.topk <= 0 else opts.arrangement
        n_layers = len({m.meta['layer'] for m in record.maps.values()})
        scale = figure_scale(image_rgb.shape[:2], n_layers, cells, opts.max_size)
        if scale < 1.0:
            h, w = image_rgb.shape[:2]
            image_rgb = cv2.resize(image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                   interpolation=cv2.INTER_AREA)
        return self.visualizer.record_sheet(record, image_rgb, scale, opts.arrangement,
                                            opts.align, opts.draw_pred, draw_gt=False,
                                            options=opts.figure)

    def figure(self, record: ResultRecord, image_rgb: np.ndarray) -> np.ndarray:
        """The composite figure of one record (a titled panel per captured map)."""
        return shrink_to(self.figure_sheet(record, image_rgb).render(style_of(self.options.figure)),
                         self.options.max_size)

    def render_batch(self, images_bgr: Sequence[np.ndarray],
                     paths: Optional[Sequence[str]] = None
                     ) -> Tuple[List[np.ndarray], List[ResultRecord]]:
        """Run one batch: one composite RGB figure per input, and the records."""
        records = self.run_images(images_bgr, paths)
        return [self.figure(r, bgr_to_rgb(img)) for r, img in zip(records, images_bgr)], records

    def out_path(self, path: str) -> str:
        return output_path(self.out_dir or '.', path, self.image_root,
                           ext=self.options.figure.extension(None))

    def run_all(self, paths: Optional[Sequence[str]] = None,
                sinks: Optional['RunSinks'] = None,
                message: Optional[Callable[[int], str]] = None) -> List[str]:
        """Render every image (progress bar, :class:`ImageLoop`) and return the written file
        paths.

        Images that cannot be read are skipped and recorded in ``self.unreadable``
        (:class:`UnreadableImages`). ``sinks`` also receive every record (saved results,
        report). With ``message`` the run is finished here (:meth:`ImageLoop.finish`: sinks
        closed, ``message(len(written))`` and the skipped images printed); without, the skipped
        images are only noted in ``sinks`` and the caller reports them.
        """
        loop = ImageLoop(list(paths if paths is not None else self.images),
                         self.image_root, sinks, batch_size=self.options.batch_size)
        self.unreadable = loop.unreadable
        loop.run(self.run_images, self._draw)
        if message is not None:
            loop.finish(message)
        elif sinks is not None:
            sinks.skipped(self.unreadable)
        return loop.written

    def _draw(self, path: str, image: np.ndarray, record: ResultRecord) -> Optional[str]:
        """Write (``out_dir``) and/or show one record's figure; the written path or ``None``."""
        sheet = self.figure_sheet(record, bgr_to_rgb(image))
        out = None
        if self.out_dir:
            out = self.out_path(path)
            write_figure(out, sheet, self.options.figure, self.options.max_size)
        if self.show:
            self.visualizer.show(shrink_to(sheet.render(style_of(self.options.figure)),
                                           self.options.max_size),
                                 win_name=osp.basename(path))
        return out


def shrink_to(image_rgb: np.ndarray, max_size: int) -> np.ndarray:
    """``image_rgb`` scaled down so that its longest side is at most ``max_size`` (the panels
    were already scaled to fit; titles and borders add a few pixels that this takes back)."""
    h, w = image_rgb.shape[:2]
    if max(h, w) <= max_size:
        return image_rgb
    scale = max_size / max(h, w)
    size = (min(max_size, max(1, int(w * scale))), min(max_size, max(1, int(h * scale))))
    return cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)


def figure_scale(shape: Sequence[int], n_panels: int, cells, max_size: int) -> float:
    """The factor (<= 1) that makes a figure of ``n_panels`` panels of ``cells`` (``1`` or
    ``(rows, cols)``) of an image of ``shape`` fit in ``max_size`` pixels."""
    import math
    h, w = int(shape[0]), int(shape[1])
    rows, cols = (1, 1) if cells == 1 else (int(cells[0]), int(cells[1]))
    grid_cols = int(math.ceil(math.sqrt(n_panels)))
    grid_rows = int(math.ceil(n_panels / grid_cols))
    return min(1.0, max_size / max(grid_cols * cols * w, grid_rows * rows * h))


def fit_to_max_size(image_rgb: np.ndarray, sample, n_panels: int, cells, max_size: int):
    """Scale the image (and the sample's predicted boxes) so that the figure of ``n_panels``
    panels of ``cells`` (``1`` or ``(rows, cols)``) fits in ``max_size`` pixels; boxes and labels
    are then drawn at the output scale instead of shrinking to 1-px lines with the figure."""
    h, w = image_rgb.shape[:2]
    scale = figure_scale((h, w), n_panels, cells, max_size)
    if scale >= 1.0:
        return image_rgb, sample
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
    sample = sample.clone()
    if 'pred_instances' in sample:
        pred = sample.pred_instances.clone()
        pred.bboxes = pred.bboxes * scale
        sample.pred_instances = pred
    return small, sample


def feature_capture(model, layers: Sequence[str], keep: bool = False) -> FeatureCapture:
    """A capture of the named layers' outputs on ``model``, not attached yet (the caller attaches
    it, as :class:`~mmattnvis.hooks.FeatMapVisHook` does inside a runner's loop)."""
    return FeatureCapture(model, layers, keep=keep)
