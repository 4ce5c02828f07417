# As yolov5_n_neck_featmap.py, with the maps also sent to TensorBoard.
_base_ = './yolov5_n_neck_featmap.py'

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(
    type='mmdet.DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
