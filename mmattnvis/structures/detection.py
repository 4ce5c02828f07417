"""One prediction of a detector, for DETR queries and CNN predictions alike."""
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

import numpy as np


@dataclass
class Detection:
    """One prediction of a detector.

    Attributes:
        image: Index of the image in the batch.
        rank: Index of the prediction in ``pred_instances``.
        query: Decoder query index for DETR-family models; the prediction's index otherwise.
        label: Class index.
        score: Score as in ``pred_instances``.
        bbox: ``(x1, y1, x2, y2)`` in original-image pixels.
        class_name: Class name when the dataset meta has one.
    """
    image: int
    rank: int
    query: int
    label: int
    score: float
    bbox: np.ndarray
    class_name: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able form (see :meth:`from_dict`)."""
        return {'image': int(self.image), 'rank': int(self.rank), 'query': int(self.query),
                'label': int(self.label), 'score': float(self.score),
                'bbox': [float(v) for v in np.asarray(self.bbox).reshape(-1)[:4]],
                'class_name': self.class_name}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> 'Detection':
        return cls(int(d['image']), int(d['rank']), int(d['query']), int(d['label']),
                   float(d['score']), np.asarray(d['bbox'], dtype=np.float32),
                   d.get('class_name'))
