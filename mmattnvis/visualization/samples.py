"""Result records as the data samples MMDet's ``DetLocalVisualizer`` draws."""
import numpy as np
import torch

from ..structures import ResultRecord


def drawing_sample(record: ResultRecord, scale: float = 1.0):
    """A ``DetDataSample`` with the record's detections (and ground truth) as instances, boxes
    scaled by ``scale``: what ``DetLocalVisualizer`` draws."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    sample = DetDataSample(metainfo={'img_path': record.image_path,
                                     'ori_shape': record.geometry.ori_shape})
    pred = InstanceData()
    boxes = np.array([d.bbox for d in record.detections], np.float32).reshape(-1, 4)
    pred.bboxes = torch.from_numpy(boxes * scale)
    pred.scores = torch.tensor([d.score for d in record.detections], dtype=torch.float32)
    pred.labels = torch.tensor([d.label for d in record.detections], dtype=torch.int64)
    sample.pred_instances = pred
    if 'gt_bboxes' in record.arrays:
        gt = InstanceData()
        gt.bboxes = torch.from_numpy(np.asarray(record.arrays['gt_bboxes'], np.float32) * scale)
        gt.labels = torch.from_numpy(np.asarray(record.arrays['gt_labels'], np.int64))
        sample.gt_instances = gt
    return sample
