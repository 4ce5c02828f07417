"""``FeatMapVisualizer``: MMDet's ``DetLocalVisualizer`` plus aligned feature-map panels."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet.visualization import DetLocalVisualizer

from ..methods.featmap import build_reduction
from ..registry import VISUALIZERS
from ..render.featmap import render_featmap
from ..render.geometry import ImageGeometry
from ..render.image import add_title, auto_arrange


@VISUALIZERS.register_module()
class FeatMapVisualizer(DetLocalVisualizer):
    """Draw feature maps aligned with the original image, with predictions on top.

    Args:
        alpha: Weight of the heat map when blended with the image.
        colormap: OpenCV colormap name (``jet`` as in MMEngine).
        **kwargs: Passed to :class:`mmdet.visualization.DetLocalVisualizer`
            (``name``, ``vis_backends``, ``save_dir``, ``bbox_color``, ...).
    """

    def __init__(self,
                 name: str = 'mmattnvis_featmap',
                 alpha: float = 0.5,
                 colormap: str = 'jet',
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.alpha = alpha
        self.colormap = colormap

    @staticmethod
    def draw_featmap(featmap: torch.Tensor,
                     overlaid_image: Optional[np.ndarray] = None,
                     channel_reduction: Optional[str] = 'squeeze_mean',
                     topk: int = 20,
                     arrangement: Sequence[int] = (4, 5),
                     resize_shape: Optional[tuple] = None,
                     alpha: float = 0.5,
                     geometry: Optional[ImageGeometry] = None,
                     colormap: str = 'jet',
                     pred_image: Optional[np.ndarray] = None) -> np.ndarray:
        """Drop-in for :meth:`mmengine.visualization.Visualizer.draw_featmap`.

        Same arguments and output for ``squeeze_mean`` / ``select_max`` / top-k / raw maps, plus
        ``pixel_wise_max``, ``geometry`` (undo letterbox/padding), ``colormap`` and ``pred_image``
        (an image with predictions whose drawn pixels are laid on each cell). The top-k grid is
        drawn with OpenCV instead of matplotlib.
        """
        method = build_reduction(channel_reduction, topk, arrangement)
        if overlaid_image is None:
            h, w = (resize_shape or featmap.shape[-2:])
            image = np.zeros((int(h), int(w), 3), dtype=np.uint8)
            alpha_used = 1.0
        else:
            image = overlaid_image
            if resize_shape is not None:
                import cv2
                image = cv2.resize(image, tuple(int(v) for v in resize_shape[::-1]))
            alpha_used = alpha
        return render_featmap(featmap, image, method, geometry, alpha_used, colormap,
                              arrangement, pred_image)

    def draw_instances_on(self,
                          image_rgb: np.ndarray,
                          data_sample=None,
                          score_thr: float = 0.3,
                          draw_pred: bool = True,
                          draw_gt: bool = False) -> np.ndarray:
        """``image_rgb`` with the sample's predictions (score > ``score_thr``) and/or GT boxes,
        drawn by MMDet's ``DetLocalVisualizer``."""
        out = image_rgb
        if data_sample is None:
            return out
        meta = self.dataset_meta or {}
        classes = meta.get('classes')
        palette = meta.get('palette')
        if draw_gt and 'gt_instances' in data_sample and len(data_sample.gt_instances):
            out = self._draw_instances(out, data_sample.gt_instances.cpu(), classes, palette)
        if draw_pred and 'pred_instances' in data_sample:
            pred = data_sample.pred_instances.cpu()
            pred = pred[pred.scores > score_thr]
            if len(pred):
                out = self._draw_instances(out, pred, classes, palette)
        return out

    def draw_featmaps(self,
                      featmaps: Dict[str, torch.Tensor],
                      image_rgb: np.ndarray,
                      data_sample=None,
                      geometry: Optional[ImageGeometry] = None,
                      channel_reduction: Optional[str] = 'select_max',
                      topk: int = 4,
                      arrangement: Sequence[int] = (2, 2),
                      score_thr: float = 0.3,
                      draw_pred: bool = True,
                      draw_gt: bool = False,
                      alpha: Optional[float] = None) -> np.ndarray:
        """One image with a titled panel per feature map (``{name: (C, H, W)}``).

        Predictions are drawn once by ``DetLocalVisualizer`` and laid over every panel.
        """
        method = build_reduction(channel_reduction, topk, arrangement)
        drawn = self.draw_instances_on(image_rgb, data_sample, score_thr, draw_pred, draw_gt)
        pred_image = drawn if drawn is not image_rgb else None
        alpha = self.alpha if alpha is None else alpha
        panels: List[np.ndarray] = []
        for name, fm in featmaps.items():
            panel = render_featmap(fm, image_rgb, method, geometry, alpha, self.colormap,
                                   arrangement, pred_image)
            shape = 'x'.join(str(s) for s in fm.shape)
            panels.append(add_title(panel, f'{name}  ({shape})'))
        if not panels:
            return drawn
        return auto_arrange(panels)
