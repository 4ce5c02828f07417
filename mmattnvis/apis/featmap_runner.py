"""The feature-map workflow shared by ``tools/featmap_vis.py`` and the demo: thin glue over
capture -> methods -> render -> visualizer."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import MMLogger
from mmengine.utils import ProgressBar

from ..capture import FeatureCapture, describe_module_outputs
from ..methods.featmap import build_reduction
from ..render.image import colormap_code
from ..utils.cli import check_display, write_image_atomic
from ..utils.errors import UserInputError
from ..utils.validate import check_at_least, check_within
from .inference import (UnreadableImages, batched, bgr_to_rgb, build_test_pipeline,
                        collect_images, geometries, load_image, prepare_batch, run_test_step)
from .model import init_model_from_args


@dataclass
class FeatMapOptions:
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

    def validate(self) -> None:
        """Raise :class:`UserInputError` for bad values before any heavy work."""
        if isinstance(self.channel_reduction, str) and self.channel_reduction.lower() == 'none':
            self.channel_reduction = None
        build_reduction(self.channel_reduction, self.topk, self.arrangement)
        try:
            colormap_code(self.colormap)
        except ValueError as err:
            raise UserInputError(str(err)) from None
        check_within('--alpha', self.alpha, 0.0, 1.0)
        check_within('--score-thr', self.score_thr, 0.0, 1.0)
        check_at_least('--batch-size', self.batch_size, 1)
        if not self.target_layers:
            raise UserInputError('no target layers given')
        if self.max_size < 64:
            raise UserInputError(f'max size must be >= 64 pixels, got {self.max_size}')


class FeatMapRun:
    """A model, its test pipeline, a visualizer and the options; renders images to files."""

    def __init__(self, model, options: FeatMapOptions, out_dir: Optional[str] = None,
                 show: bool = False) -> None:
        from ..visualization import FeatMapVisualizer
        self.model = model
        self.options = options
        self.out_dir = out_dir
        self.show = show
        self.pipeline = build_test_pipeline(model.cfg)
        self.visualizer = FeatMapVisualizer(
            name=f'mmattnvis_featmap_{id(self)}', featmap_alpha=options.alpha, colormap=options.colormap)
        self.visualizer.dataset_meta = model.dataset_meta
        # Resolve layer names now: a typo fails before any image is processed.
        FeatureCapture(model, list(options.target_layers))
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
            cfg_options=args.cfg_options or {})
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
    def preview(self, max_depth: Optional[int] = 3, image: Optional[np.ndarray] = None) -> List[str]:
        """Module tree with output shapes from one forward on the first image (or a dummy)."""
        if image is None:
            paths = getattr(self, 'images', None)
            image = load_image(paths[0]) if paths else np.full((480, 640, 3), 114, np.uint8)
        data = prepare_batch([image], self.pipeline)
        return describe_module_outputs(self.model, lambda: run_test_step(self.model, data),
                                       max_depth)

    def render_batch(self, images_bgr: Sequence[np.ndarray],
                     paths: Optional[Sequence[str]] = None) -> Tuple[List[np.ndarray], list]:
        """Run one batch and return one composite RGB image per input, and the predictions."""
        opts = self.options
        data = prepare_batch(images_bgr, self.pipeline, paths)
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
        geoms = geometries(results)
        cells = 1 if opts.channel_reduction is not None or opts.topk <= 0 else \
            opts.arrangement
        drawn = []
        for i, (img, sample) in enumerate(zip(images_bgr, results)):
            per_image = {k: v[i] for k, v in featmaps.items()}
            image, sample = fit_to_max_size(bgr_to_rgb(img), sample, len(per_image), cells,
                                            opts.max_size)
            drawn.append(
                self.visualizer.draw_featmaps(
                    per_image,
                    image,
                    sample,
                    geometry=geoms[i] if opts.align else None,
                    channel_reduction=opts.channel_reduction,
                    topk=opts.topk,
                    arrangement=opts.arrangement,
                    score_thr=opts.score_thr,
                    draw_pred=opts.draw_pred))
        return drawn, results

    def out_path(self, path: str) -> str:
        rel = osp.relpath(path, self.image_root) if self.image_root else osp.basename(path)
        if rel.startswith('..'):
            rel = osp.basename(path)
        return osp.join(self.out_dir, rel)

    def run_all(self, paths: Optional[Sequence[str]] = None) -> List[str]:
        """Render every image (progress bar) and return the written file paths.

        Images that cannot be read are skipped and recorded in ``self.unreadable``
        (:class:`UnreadableImages`); the caller reports them.
        """
        paths = list(paths if paths is not None else self.images)
        written: List[str] = []
        progress = ProgressBar(len(paths))
        self.unreadable = UnreadableImages()
        for _, chunk in batched(paths, self.options.batch_size):
            loaded = [(p, self.unreadable.load(p)) for p in chunk]
            for _ in range(sum(img is None for _, img in loaded)):
                progress.update()
            chunk = [p for p, img in loaded if img is not None]
            images = [img for _, img in loaded if img is not None]
            if not images:
                continue
            drawn, _ = self.render_batch(images, chunk)
            for path, img in zip(chunk, drawn):
                if self.out_dir:
                    out = self.out_path(path)
                    write_image_atomic(out, img)
                    written.append(out)
                if self.show:
                    self.visualizer.show(img, win_name=osp.basename(path))
                progress.update()
        return written


def fit_to_max_size(image_rgb: np.ndarray, sample, n_panels: int, cells, max_size: int):
    """Scale the image (and the sample's predicted boxes) so that the figure of ``n_panels``
    panels of ``cells`` (``1`` or ``(rows, cols)``) fits in ``max_size`` pixels; boxes and labels
    are then drawn at the output scale instead of shrinking to 1-px lines with the figure."""
    import math

    import cv2
    h, w = image_rgb.shape[:2]
    rows, cols = (1, 1) if cells == 1 else (int(cells[0]), int(cells[1]))
    grid_cols = int(math.ceil(math.sqrt(n_panels)))
    grid_rows = int(math.ceil(n_panels / grid_cols))
    scale = min(1.0, max_size / max(grid_cols * cols * w, grid_rows * rows * h))
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
