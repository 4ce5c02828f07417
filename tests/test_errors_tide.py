"""Error labels and dAP (mmattnvis.metrics.errors / error_ap) against TIDE's own code.

``tidecv`` is a test-only dependency (the ``tests`` extra); the comparisons skip without it.
"""
import json
import os.path as osp

import numpy as np
import pytest

from mmattnvis.metrics.error_ap import average_precision, summarize_errors
from mmattnvis.metrics.errors import KINDS, SHORT_NAMES, label_image, miss_reason

SHIPPED = ('yolov5_n_shapes', 'retinanet_r18w32_fpn_shapes', 'dino_slim_shapes')


def _tidecv():
    try:
        import tidecv
    except ImportError as err:  # pragma: no cover - depends on the environment
        pytest.skip(f'tidecv is not installed (pip install "mmattnvis[tests]"): {err}')
    return tidecv


def _xywh(b):
    b = [float(v) for v in b]
    return [b[0], b[1], b[2] - b[0], b[3] - b[1]]


def _tide_numbers(images):
    """Run tidecv on ``[(boxes, scores, labels, gt_boxes, gt_labels)]``; return its run's AP,
    counts, dAP, special dAP and the per-class AP of each fixed run."""
    tidecv = _tidecv()
    gt, preds = tidecv.Data('gt'), tidecv.Data('preds')
    for i, (boxes, scores, labels, gt_boxes, gt_labels) in enumerate(images):
        gt.add_image(i, f'image {i}')
        for b, c in zip(gt_boxes, gt_labels):
            gt.add_ground_truth(i, int(c), _xywh(b))
        for b, s, c in zip(boxes, scores, labels):
            preds.add_detection(i, int(c), float(s), _xywh(b))
    tide = tidecv.TIDE()
    run = tide.evaluate(gt, preds, mode=tidecv.TIDE.BOX)
    by_short = {t.short_name: t for t in tidecv.TIDE._error_types}
    counts = {k: n for k, n in ((SHORT_NAMES_INV[t.short_name], n)
                                for t, n in run.count_errors().items())}
    main = tide.get_main_errors()['preds']
    dap = {SHORT_NAMES_INV[s]: v for s, v in main.items()}
    special = tide.get_special_errors()['preds']
    per_class = {}
    for kind in KINDS:
        cls = by_short[SHORT_NAMES[kind]]
        fixed = run.fix_errors(lambda e, cls=cls: isinstance(e, cls))
        per_class[kind] = {c: o.get_ap() for c, o in fixed.objs.items() if not o.is_empty()}
    base_cls = {c: o.get_ap() for c, o in run.ap_data.objs.items() if not o.is_empty()}
    return run.ap, counts, dap, special, per_class, base_cls


SHORT_NAMES_INV = {v: k for k, v in SHORT_NAMES.items()}


def _ours(images, **kw):
    labelled = [label_image(*im, **kw) for im in images]
    return labelled, summarize_errors(labelled)


def _assert_equal_to_tide(images):
    ap, counts, dap, special, per_class, base_cls = _tide_numbers(images)
    _, ours = _ours(images)
    assert ours.ap == pytest.approx(ap, abs=1e-9)
    assert ours.counts == counts
    for kind in KINDS:
        assert ours.dap[kind] == pytest.approx(dap[kind], abs=1e-9), kind
    assert ours.dap['false_positive'] == pytest.approx(special['FalsePos'], abs=1e-9)
    assert ours.dap['false_negative'] == pytest.approx(special['FalseNeg'], abs=1e-9)
    for c, v in base_cls.items():
        assert ours.per_class[c]['ap'] == pytest.approx(v, abs=1e-9)
        for kind in KINDS:  # per-class dAP: the class's AP after TIDE's fix, minus before
            want = max(per_class[kind].get(c, 0.0) - v, 0.0)
            assert ours.per_class[c]['dap'][kind] == pytest.approx(want, abs=1e-9), (c, kind)
    return ours


# -- constructed cases, one per kind -----------------------------------------------------------
GT = np.array([[10, 10, 50, 50], [100, 100, 140, 140]], float)
GT_LABELS = np.array([0, 1])


@pytest.mark.parametrize('box, label, kind, gt', [
    ([10, 10, 50, 50], 0, 'tp', 0),
    ([10, 10, 50, 50], 1, 'classification', 0),          # right box, wrong class
    ([10, 10, 40, 30], 0, 'localization', 0),            # IoU 0.375
    ([10, 10, 40, 30], 1, 'both', 0),                    # wrong class, IoU 0.375
    ([200, 200, 240, 240], 0, 'background', -1),         # overlaps nothing
    ([48, 48, 98, 98], 1, 'background', -1),             # IoU <= 0.1 with both
])
def test_one_detection_each_kind(box, label, kind, gt):
    res = label_image([box], [0.9], [label], GT, GT_LABELS)
    assert res.kinds == [kind] and res.det_gt == [gt]
    # the other object is missed; a classification / localisation error covers its object
    covered = {'classification': 'classification', 'localization': 'localization'}
    assert res.gt_status[1] == 'missed'
    assert res.gt_status[0] == {'tp': 'matched'}.get(kind, covered.get(kind, 'missed'))


def test_duplicate_and_order_by_score():
    boxes = [[11, 11, 50, 50], [10, 10, 50, 50]]
    res = label_image(boxes, [0.5, 0.9], [0, 0], GT[:1], GT_LABELS[:1])
    assert res.kinds == ['duplicate', 'tp'] and res.order == [1, 0]  # the higher score matches


def test_no_objects_all_background_and_no_detections_all_missed():
    res = label_image([[0, 0, 5, 5]], [0.4], [2], np.zeros((0, 4)), [])
    assert res.kinds == ['background']
    res = label_image(np.zeros((0, 4)), [], [], GT, GT_LABELS)
    assert res.gt_status == ['missed', 'missed'] and res.counts()['missed'] == 2


def test_only_the_best_covering_error_is_fixed():
    # two localisation errors on one object: TIDE's oracle turns only the higher-scoring one
    # into a true positive and drops the other
    res = label_image([[10, 10, 40, 30], [10, 10, 45, 30]], [0.6, 0.8], [0, 0],
                      GT[:1], GT_LABELS[:1])
    assert res.kinds == ['localization', 'localization']
    assert res.fixed == {0: None, 1: 0}
    s = summarize_errors([res])
    assert s.ap == 0.0 and s.dap['localization'] == pytest.approx(100.0)


def test_average_precision_is_degenerate_safe():
    assert average_precision([], [], 3) == 0.0
    assert average_precision([0.9, 0.8], [True, True], 0) == 0.0
    assert average_precision([0.9, 0.8], [True, True], 2) == pytest.approx(100.0)
    assert average_precision([0.9, 0.8], [False, True], 1) == pytest.approx(50.0)


def test_miss_reasons():
    gt = [10, 10, 50, 50]
    assert miss_reason(gt, 0, np.zeros((0, 4)), [], [], 0.3)['reason'] == 'no_candidate'
    far = miss_reason(gt, 0, [[200, 200, 240, 240]], [0.9], [0], 0.3)
    assert far['reason'] == 'no_candidate' and far['candidate'] == 0
    low = miss_reason(gt, 0, [[10, 10, 50, 50], [12, 10, 50, 50]], [0.1, 0.2], [0, 0], 0.3)
    assert low['reason'] == 'low_score' and low['candidate'] == 0  # highest IoU
    assert miss_reason(gt, 0, [[10, 10, 50, 50]], [0.7], [0], 0.3)['reason'] == 'suppressed'
    wrong = miss_reason(gt, 0, [[10, 10, 50, 50], [10, 10, 50, 50]], [0.1, 0.8], [0, 2], 0.3)
    assert wrong['reason'] == 'wrong_class' and wrong['candidate'] == 0


# -- against tidecv ---------------------------------------------------------------------------
def test_constructed_kinds_equal_tide():
    images = [
        ([[10, 10, 50, 50], [10, 10, 40, 30], [11, 11, 50, 50], [200, 200, 240, 240],
          [100, 100, 140, 140], [100, 100, 125, 120]],
         [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0, 0, 0, 1, 0, 0], GT, GT_LABELS),
        ([[0, 0, 20, 20]], [0.95], [1], np.zeros((0, 4)), []),
        (np.zeros((0, 4)), [], [], GT, GT_LABELS),
    ]
    ours = _assert_equal_to_tide(images)
    assert all(ours.counts[k] > 0 for k in KINDS), ours.counts


def _random_image(rng, n_classes=3):
    g = int(rng.integers(0, 6))
    xy = rng.uniform(0, 200, (g, 2))
    wh = rng.uniform(15, 80, (g, 2))
    gt = np.concatenate([xy, xy + wh], 1)
    gt_labels = rng.integers(0, n_classes, g)
    boxes, labels = [], []
    for b, c in zip(gt, gt_labels):
        for _ in range(int(rng.integers(0, 3))):  # 0-2 attempts per object, of any quality
            jitter = rng.normal(0, rng.choice([0.02, 0.15, 0.4]), 4) * (b[2:] - b[:2]).repeat(2)
            boxes.append(b + jitter)
            labels.append(c if rng.random() < 0.75 else rng.integers(0, n_classes))
    for _ in range(int(rng.integers(0, 3))):  # background boxes
        p = rng.uniform(0, 250, 2)
        boxes.append(np.concatenate([p, p + rng.uniform(5, 40, 2)]))
        labels.append(rng.integers(0, n_classes))
    boxes = np.array(boxes, float).reshape(-1, 4)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    scores = rng.uniform(0.05, 1.0, len(boxes))
    return boxes, scores, np.array(labels, int), gt, gt_labels


@pytest.mark.parametrize('seed', range(6))
def test_random_predictions_equal_tide(seed):
    rng = np.random.default_rng(seed)
    _assert_equal_to_tide([_random_image(rng) for _ in range(25)])


@pytest.fixture(scope='module')
def shapes_test_set(tmp_path_factory):
    from mmattnvis.datasets import generate_shapes_dataset
    root = tmp_path_factory.mktemp('shapes_errors')
    ann = generate_shapes_dataset(str(root), num_images=8, seed=2)
    return str(root), ann


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_models_equal_tide(name, shapes_test_set):
    """The three shipped models' predictions (score > 0.05, so that there are errors of
    several kinds) on a small held-out shapes set: counts and dAP equal TIDE's."""
    _tidecv()
    import cv2

    from mmattnvis.apis import (
        build_test_pipeline,
        init_model,
        prepare_batch,
        run_test_step,
        shipped_model,
    )
    root, ann = shapes_test_set
    cfg, ckpt = shipped_model(name)
    model = init_model(cfg, ckpt, device='cpu')
    pipeline = build_test_pipeline(model.cfg)
    with open(ann) as f:
        coco = json.load(f)
    images = []
    for info in coco['images']:
        path = osp.join(root, 'images', info['file_name'])
        out = run_test_step(model, prepare_batch([cv2.imread(path)], pipeline, [path]))[0]
        p = out.pred_instances
        keep = (p.scores > 0.05).numpy()
        anns = [a for a in coco['annotations'] if a['image_id'] == info['id']]
        gt = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                        a['bbox'][1] + a['bbox'][3]] for a in anns], float).reshape(-1, 4)
        images.append((p.bboxes.numpy()[keep], p.scores.numpy()[keep], p.labels.numpy()[keep],
                       gt, np.array([a['category_id'] - 1 for a in anns], int)))
    ours = _assert_equal_to_tide(images)
    assert sum(ours.counts.values()) > 0  # something to compare
