"""The report's pictures: the original images, thumbnails with boxes, and label placement."""
import os.path as osp
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..render.labels import draw_labelled_boxes, place_labels
from ..structures import Detection, ResultRecord

# label index -> box colour (RGB), cycled
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
           (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0)]


def class_name(d: Detection) -> str:
    """The detection's class name, or ``'class <label>'`` when it has none."""
    return d.class_name if d.class_name else f'class {d.label}'


def encode_jpeg(image_rgb: np.ndarray, quality: int) -> bytes:
    """``image_rgb`` as JPEG bytes at ``quality``."""
    ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(image_rgb[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError('JPEG encoding failed')
    return buf.tobytes()


def scaled_shape(shape: Sequence[int], max_side: int) -> Tuple[int, int]:
    """``(h, w)`` of ``shape`` scaled down (never up) so that its longest side is ``max_side``."""
    h, w = int(shape[0]), int(shape[1])
    s = min(1.0, max_side / max(h, w))
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def scaled_detections(record: ResultRecord, scale: float) -> List[Detection]:
    """The record's detections with their boxes multiplied by ``scale``."""
    if scale == 1.0:
        return record.detections
    return [Detection(d.image, d.rank, d.query, d.label, d.score,
                      np.asarray(d.bbox, np.float32) * scale, d.class_name)
            for d in record.detections]


def load_image(record: ResultRecord, search: Sequence[str] = ()) -> Tuple[np.ndarray,
                                                                          Optional[str]]:
    """The record's original image (RGB) and a note when it could not be read (a grey
    placeholder of the original size is returned then). A relative ``image_path`` that is not
    found from the working directory is looked up under each folder of ``search``."""
    h, w = record.geometry.ori_shape
    path = record.image_path
    if path and not osp.isabs(path) and not osp.isfile(path):
        path = next((osp.join(d, path) for d in search if osp.isfile(osp.join(d, path))), path)
    img = cv2.imread(path, cv2.IMREAD_COLOR) if path and osp.isfile(path) else None
    if img is not None and img.shape[:2] == (h, w):
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), None
    why = ('no image path' if not path else 'image not found' if img is None and not
           osp.isfile(path) else 'unreadable image' if img is None else
           f'image is {img.shape[1]}x{img.shape[0]}, the record says {w}x{h}')
    return np.full((h, w, 3), 128, np.uint8), why


def thumbnail(image_rgb: np.ndarray, detections: Sequence[Detection], size: int) -> np.ndarray:
    """``image_rgb`` scaled to ``size`` on its longest side with the detections drawn."""
    h, w = image_rgb.shape[:2]
    th, tw = scaled_shape((h, w), size)
    small = cv2.resize(image_rgb, (tw, th), interpolation=cv2.INTER_AREA)
    if not detections:
        return small
    sx, sy = tw / w, th / h
    boxes = [[d.bbox[0] * sx, d.bbox[1] * sy, d.bbox[2] * sx, d.bbox[3] * sy]
             for d in detections]
    texts = [f'{class_name(d)} {d.score:.2f}' for d in detections]
    colors = [PALETTE[d.label % len(PALETTE)] for d in detections]
    return draw_labelled_boxes(small, boxes, texts, colors, scale=0.35)


def label_font(shape: Sequence[int]) -> float:
    """Font size (original-image pixels) of the labels the page draws over an image."""
    return max(6.0, min(int(shape[0]), int(shape[1])) / 32)


def label_rects(detections: Sequence[Detection], shape: Sequence[int],
                font: float) -> List[Tuple[int, int, int, int]]:
    """Where the page puts each detection's label (``x0, y0, x1, y1``, original-image pixels):
    :func:`~mmattnvis.render.labels.place_labels`, so that labels never cover each other (text
    width estimated at 0.6 em a character)."""
    sizes = [(int(np.ceil(0.6 * font * len(f'{class_name(d)} {d.score:.2f}') + font * 0.4)),
              int(np.ceil(font * 1.3))) for d in detections]
    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)
    boxes: List[Any] = [detections[i].bbox for i in order]
    rects = place_labels(boxes, [sizes[i] for i in order], shape)
    out: List[Tuple[int, int, int, int]] = [(0, 0, 0, 0)] * len(detections)
    for i, (x0, y0, x1, y1) in zip(order, rects):
        out[i] = (int(x0), int(y0), int(x1), int(y1))
    return out
