"""DETR relevance and attention-capture costs (DETR-R50 from MMDet's config, random weights,
320 px input, CPU).

* Relevance for the 10 top detections of an image: one forward + one batched backward, vs the
  reference implementation's way: Chefer et al.'s DETR code runs, per query, a forward pass,
  ``model.zero_grad()`` and ``one_hot.backward()`` (gradients of every parameter, the backbone
  included) and reads the attention gradients from hooks. Goal: >= 5x faster.
  Also reported against mmattnvis' own per-query path (a forward and a backward restricted to the
  attention maps per query), which is already cheaper than the reference.
  On CPU the batched backward costs about as much as the 10 single ones (it is compute-bound),
  so the gain is the 9 forward passes saved: it grows with the image size.
  One forward + 10 backward passes is reported too.
* Attention capture (every encoder / decoder attention, per head) on a forward pass.
  Goal: <= 10 % overhead.
"""
import numpy as np
import torch

from common import median_time, paired_median_times, report

CONFIG = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'


def _setup(scale: int = 320):
    from mmattnvis.apis import build_test_pipeline, init_model, prepare_batch
    torch.manual_seed(0)
    model = init_model(CONFIG, None, cfg_options={
        'test_dataloader.dataset.pipeline.1.scale': (scale, scale)})
    img = np.random.default_rng(0).integers(0, 255, (scale * 3 // 4, scale, 3), dtype=np.uint8)
    return model, prepare_batch([img], build_test_pipeline(model.cfg))


def _reference_query(model, data) -> list:
    """One query the way Chefer et al.'s DETR code does it: a forward pass, ``zero_grad`` and a
    full ``backward`` of the query's class logit, attention gradients read from the graph."""
    from mmattnvis.capture import AttentionCapture
    with AttentionCapture(model, keep_grad=True) as cap, torch.enable_grad():
        processed = model.data_preprocessor(data, False)
        model.predict(processed['inputs'], processed['data_samples'])
        for t in cap.record.graph.values():
            t.retain_grad()
        cls = cap.record.head_outputs[0]
        q = int(cls[0].max(-1).values.argmax())
        model.zero_grad()
        cls[0, q].max().backward()
        grads = [t.grad for t in cap.record.graph.values()]
    model.zero_grad(set_to_none=True)
    return grads


def run(repeat: int = 3, scale: int = 320) -> list:
    from mmattnvis.apis import run_test_step
    from mmattnvis.capture import AttentionCapture
    from mmattnvis.methods import CheferRelevance
    model, data = _setup(scale)
    k = 10
    batched = CheferRelevance(max_detections=k)
    looped = CheferRelevance(batched=False, max_detections=k)
    single = CheferRelevance(max_detections=1)
    t_batched = median_time(lambda: batched.explain(model, data, -1), repeat)
    t_loop = median_time(lambda: looped.explain(model, data, -1), repeat)
    t_single = k * median_time(lambda: single.explain(model, data, -1), repeat)
    t_reference = k * median_time(lambda: _reference_query(model, data), repeat)
    rows = [
        report(f'relevance, 10 detections, {scale} px: batched vs the reference implementation '
               '(forward + full backward per query)',
               {'reference (x10)': t_reference, 'batched': t_batched},
               t_reference / t_batched, 'speed-up >= 5', t_reference / t_batched >= 5),
        report(f'relevance, 10 detections, {scale} px: batched vs mmattnvis per query '
               '(forward + attention-only backward)',
               {'per query (x10)': t_single, 'batched': t_batched}, t_single / t_batched,
               'reported', True),
        report(f'relevance, 10 detections, {scale} px: batched vs one forward + 10 backward',
               {'10 backward': t_loop, 'batched': t_batched}, t_loop / t_batched, 'reported',
               True),
    ]

    def plain():
        run_test_step(model, data)

    def captured():
        with AttentionCapture(model):
            run_test_step(model, data)

    t_plain, t_cap, cap_ratio = paired_median_times(plain, captured, repeat * 5)
    rows.append(report('attention capture overhead on a DETR-R50 forward',
                       {'forward': t_plain, 'forward + capture': t_cap}, cap_ratio,
                       '<= 1.10', cap_ratio <= 1.10))
    return rows


if __name__ == '__main__':
    import sys
    run(scale=int(sys.argv[1]) if len(sys.argv) > 1 else 320)
