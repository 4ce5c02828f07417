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
from ..utils.cli import write_image_atomic
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
            cfg_options=args.cfg_options or {})
        options.validate()
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
        drawn = []
        for i, (img, sample) in enumerate(zip(images_bgr, results)):
            per_image = {k: v[i] for k, v in featmaps.items()}
            drawn.append(
                self.visualizer.draw_featmaps(
                    per_image,
                    bgr_to_rgb(img),
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
