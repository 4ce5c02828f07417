"""Box geometry shared by methods, metrics and hooks: boxes are ``x1, y1, x2, y2`` pixels."""
from typing import Optional, Sequence, Union, overload

import numpy as np
import torch

#: One box or an ``(N, 4)`` array of boxes, as a sequence, array or tensor.
BoxLike = Union[Sequence[float], np.ndarray, torch.Tensor]


@overload
def box_iou(boxes1: torch.Tensor, boxes2: BoxLike, eps: Optional[float] = None) -> torch.Tensor:
    ...


@overload
def box_iou(boxes1: Union[Sequence[float], np.ndarray], boxes2: BoxLike,
            eps: Optional[float] = None) -> np.ndarray:
    ...


def box_iou(boxes1: BoxLike, boxes2: BoxLike,
            eps: Optional[float] = None) -> Union[np.ndarray, torch.Tensor]:
    """IoU of every box of ``boxes1`` with every box of ``boxes2`` ``(M, 4)``.

    Args:
        boxes1: ``(N, 4)`` boxes, or one box ``(4,)``.
        boxes2: ``(M, 4)`` boxes.
        eps: Lower bound of the union (degenerate boxes); default ``1e-6`` for tensors and
            ``1e-9`` for arrays (read as float64).

    Returns:
        ``(N, M)`` IoU, or ``(M,)`` for one box. A tensor ``boxes1`` gives a tensor
        (differentiable, on its device and dtype); anything else a float64 array.
    """
    if isinstance(boxes1, torch.Tensor):
        b1, b2 = boxes1.reshape(-1, 4), torch.as_tensor(boxes2).reshape(-1, 4)
        lt = torch.maximum(b1[:, None, :2], b2[None, :, :2])
        rb = torch.minimum(b1[:, None, 2:], b2[None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=2)
        area1 = (b1[:, 2:] - b1[:, :2]).clamp(min=0).prod(dim=1)
        area2 = (b2[:, 2:] - b2[:, :2]).clamp(min=0).prod(dim=1)
        union = (area1[:, None] + area2[None, :] - inter).clamp(min=1e-6 if eps is None else eps)
        iou = inter / union
        return iou[0] if boxes1.dim() == 1 else iou
    one = np.ndim(boxes1) == 1
    a1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    a2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    lt_ = np.maximum(a1[:, None, :2], a2[None, :, :2])
    rb_ = np.minimum(a1[:, None, 2:], a2[None, :, 2:])
    inter_ = np.clip(rb_ - lt_, 0, None).prod(axis=2)
    area1_ = np.clip(a1[:, 2:] - a1[:, :2], 0, None).prod(axis=1)
    area2_ = np.clip(a2[:, 2:] - a2[:, :2], 0, None).prod(axis=1)
    union_ = np.maximum(area1_[:, None] + area2_[None, :] - inter_, 1e-9 if eps is None else eps)
    out = inter_ / union_
    return out[0] if one else out


__all__ = ['BoxLike', 'box_iou']
