"""The user's path, end to end (#24): every task's CLI run as a user types it with ``--report``,
and the hooks in a user's config through ``tools/test.py``, ``tools/val.py`` and a one-epoch
``tools/train.py`` on data made with ``tools/make_shapes.py``; each report is then opened in
headless Chromium and checked for what *that* run produced: class names (not numbers), the
clicked detection's sampling points (deformable), encoder attention on a click (DETR), every
method's map per detection (cam), layers and image names (featmap, faithfulness), a title that
names the run.

One run per task (module-scoped fixtures), on the two small demo images or a few generated
shapes images; the DETR runs use MMDet's config shrunk with ``--cfg-options`` (random weights).
"""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
from browser_utils import Page, launch_browser

from conftest import ROOT

DEMO = [osp.join(ROOT, 'demo', 'images', f'shapes_{i}.jpg') for i in (1, 2)]
SHAPES = ('circle', 'square', 'triangle', 'star')
DINO = ('mmattnvis::shapes/dino_slim_shapes.py', 'mmattnvis::shapes/dino_slim_shapes.pth')
RETINA = ('mmattnvis::shapes/retinanet_r18w32_fpn_shapes.py',
          'mmattnvis::shapes/retinanet_r18w32_fpn_shapes.pth')
DETR = ('mmdet::detr/detr_r50_8xb2-150e_coco.py', 'none', '--cfg-options',
        'model.backbone.depth=18', 'model.neck.in_channels=[512]', 'model.encoder.num_layers=2',
        'model.decoder.num_layers=2', 'test_dataloader.dataset.pipeline.1.scale=(192,192)')
CAM_METHODS = ('gradcam', 'eigencam', 'odam', 'drise', 'occlusion')


def mmattnvis(*argv) -> None:
    """``mmattnvis <command> ...`` as typed (in this process: the same entry point)."""
    from mmattnvis.cli.main import main
    assert main([str(a) for a in argv]) == 0


def tool(name: str, *argv) -> None:
    """``python tools/<name>.py ...`` (the tools are shells over ``mmattnvis.cli.<name>``)."""
    import importlib
    assert importlib.import_module(f'mmattnvis.cli.{name}').main([str(a) for a in argv]) == 0


@pytest.fixture(scope='module')
def browser():
    yield from launch_browser()


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp('imgs')
    for p in DEMO:
        shutil.copy(p, d)
    return str(d)


@pytest.fixture(scope='module')
def cpu():
    return ('--device', 'cpu')


def open_report(browser, index_html: str) -> Page:
    assert osp.isfile(index_html), index_html
    return Page(browser, 'file://' + osp.abspath(index_html))


def check_common(p: Page, model_name: str) -> None:
    """Title names the run (no temporary folder), classes are names, no page errors."""
    title = p.page.title()
    assert '.mmattnvis-results' not in title and model_name in title, title
    classes = p.js('MMATTNVIS.index.classes')
    assert classes and not any(re.fullmatch(r'class \d+', c) for c in classes), classes
    options = p.page.locator('#f-class option').all_text_contents()
    assert not any(o.startswith('class ') for o in options), options


def detections(p: Page):
    return p.js('MMATTNVIS.state.current.detections')


def image_with_detections(p: Page) -> int:
    """Open the first image that has detections; its index."""
    for i, e in enumerate(p.js('MMATTNVIS.index.images')):
        if e['dets']:
            p.open_image(i)
            return i
    raise AssertionError('no image with detections in the report')


# ----- featmap -------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def featmap_report(images, tmp_path_factory, cpu):
    out = tmp_path_factory.mktemp('featmap')
    mmattnvis('featmap', images, *RETINA, '--target-layers', 'neck', '--out-dir', out / 'figs',
              '--report', out / 'report', *cpu)
    return str(out / 'report' / 'index.html')


def test_featmap_report_names_layers_and_classes(browser, featmap_report):
    p = open_report(browser, featmap_report)
    try:
        check_common(p, 'retinanet_r18w32_fpn_shapes')
        image_with_detections(p)
        assert {d['cls'] for d in detections(p)} <= set(SHAPES)
        maps = p.js('MMATTNVIS.state.current.maps')
        assert maps and all(m['meta']['layer'].startswith('neck') for m in maps)
        captions = p.page.locator('#d-body .tile .tcap').all_text_contents()
        assert len(captions) == len(maps)
        for m, cap in zip(maps, captions):  # 'channel: 7' alone does not say where it is from
            assert cap.startswith(m['meta']['layer']), (cap, m['meta'])
        assert p.errors == []
    finally:
        p.close()


# ----- attention: DETR (dense) ---------------------------------------------------------------
@pytest.fixture(scope='module')
def detr_reports(images, tmp_path_factory, cpu):
    """decoder, encoder, relevance and rollout on a small DETR (random weights)."""
    out = tmp_path_factory.mktemp('detr')
    extra = {'decoder': (), 'encoder': ('--points', '60,60'), 'relevance': (), 'rollout': ()}
    reports = {}
    for mode, args in extra.items():
        mmattnvis('attn', images, *DETR, '--mode', mode, *args, '--score-thr', '0',
                  '--max-queries', '2', '--out-dir', out / mode, '--report', out / f'r_{mode}',
                  *cpu)
        reports[mode] = str(out / f'r_{mode}' / 'index.html')
    return reports


@pytest.mark.parametrize('mode', ['decoder', 'encoder'])
def test_detr_click_shows_encoder_attention(browser, detr_reports, mode):
    p = open_report(browser, detr_reports[mode])
    try:
        check_common(p, 'detr_r50_8xb2-150e_coco')
        assert f'attention ({mode})' in p.page.title()
        p.open_image(0)
        rec = p.js('MMATTNVIS.state.current')
        assert rec['encoder'] is not None
        assert {d['cls'] for d in rec['detections']} and all(
            not d['cls'].startswith('class ') for d in rec['detections'])
        kinds = {m['meta']['kind'] for m in rec['maps']}
        assert kinds == {'cross_attention' if mode == 'decoder' else 'encoder_attention'}
        if mode == 'decoder':  # a map per detection
            assert {m['meta']['detection'] for m in rec['maps']} == {
                d['rank'] for d in rec['detections']}
        for xy in ((0.3, 0.4), (0.8, 0.7)):
            p.click_image(xy[0] * rec['width'], xy[1] * rec['height'], rec['width'],
                          rec['height'])
            enc = p.js('MMATTNVIS.state.encoder')
            assert enc is not None and len(enc['row']) == np.prod(rec['encoder']['grid'])
            assert np.ptp(enc['row']) > 0 and np.ptp(enc['col']) > 0
            assert p.inked_pixels('#d-encoder canvas.enc[data-direction="to"]') == np.prod(
                rec['encoder']['grid'])
        assert p.errors == []
    finally:
        p.close()


@pytest.mark.parametrize('mode,kinds', [('relevance', {'relevance'}), ('rollout', {'rollout'})])
def test_detr_relevance_and_rollout_maps_are_shown(browser, detr_reports, mode, kinds):
    p = open_report(browser, detr_reports[mode])
    try:
        check_common(p, 'detr_r50_8xb2-150e_coco')
        p.open_image(0)
        rec = p.js('MMATTNVIS.state.current')
        assert rec['detections'] and rec['maps']
        assert kinds <= {m['meta']['kind'] for m in rec['maps']}
        # every map is drawn as a heat tile, and the first one on the image when selected
        assert p.page.locator('#d-body .tile canvas.heat').count() == len(rec['maps'])
        p.page.locator('#d-body .tile').first.click()
        name = rec['maps'][0]['name']
        p.page.wait_for_selector(f'#d-body .stage.main canvas.heat[data-map="{name}"]')
        assert p.inked_pixels('#d-body .stage.main canvas.heat') > 0
        assert p.errors == []
    finally:
        p.close()


# ----- attention: deformable (shipped shapes DINO) -------------------------------------------
@pytest.fixture(scope='module')
def deformable_run(images, tmp_path_factory, cpu):
    out = tmp_path_factory.mktemp('deformable')
    mmattnvis('attn', images, *DINO, '--mode', 'deformable', '--out-dir', out / 'figs',
              '--save-results', out / 'results', '--report', out / 'report', *cpu)
    mmattnvis('report', out / 'results', '-o', out / 'report2', '--quiet')
    return {'results': str(out / 'results'),
            'reports': [str(out / r / 'index.html') for r in ('report', 'report2')]}


def test_deformable_records_hold_the_sampling_points(deformable_run):
    from mmattnvis.sinks.records import load_results
    _, records = load_results(deformable_run['results'])
    rec = next(r for r in records if r.detections)
    for d in rec.detections:
        pts = rec.arrays[f'sampling_points/{d.rank}']
        # DINO slim: 8 heads x 2 levels x 4 points in the last decoder layer
        assert pts.shape == (8 * 2 * 4, 5) and pts.dtype == np.float32
        assert np.isclose(pts[:, 2].sum(), 8, atol=1e-3)  # each head's weights sum to 1
    maps = [m for m in rec.maps.values() if m.meta.get('kind') == 'sampling_points']
    assert maps and all(np.asarray(m.meta['points']).shape == (64, 5) for m in maps)
    # the JSON refers to the npz instead of dumping the points
    stem = next(s for s in json.load(open(osp.join(deformable_run['results'], 'index.json')))[
        'records'])
    text = open(osp.join(deformable_run['results'], 'records', stem + '.json')).read()
    assert '"points": {' in text and len(text) < 40000


@pytest.mark.parametrize('which', [0, 1], ids=['attn --report', 'mmattnvis report'])
def test_deformable_click_draws_the_detections_sampling_points(browser, deformable_run, which):
    p = open_report(browser, deformable_run['reports'][which])
    try:
        check_common(p, 'dino_slim_shapes')
        assert 'attention (deformable)' in p.page.title()
        image_with_detections(p)
        rec = p.js('MMATTNVIS.state.current')
        assert rec['sampling'] and set(rec['sampling']) == {str(d['rank'])
                                                           for d in rec['detections']}
        pts_canvas = '#d-body .stage.main canvas.pts'
        assert p.inked_pixels(pts_canvas) == 0
        for d in rec['detections'][:2]:
            others = [o['bbox'] for o in rec['detections'] if o is not d]
            b = d['bbox']
            xy = next(((x, y) for y in np.linspace(b[1] + 1, b[3] - 1, 9)
                       for x in np.linspace(b[0] + 1, b[2] - 1, 9)
                       if not any(o[0] <= x <= o[2] and o[1] <= y <= o[3] for o in others)),
                      None)
            if xy is None:
                continue
            p.click_image(xy[0], xy[1], rec['width'], rec['height'])
            got = p.js('MMATTNVIS.state.sampling')
            assert got['rank'] == d['rank']
            assert len(got['points']) == 64
            assert p.page.get_attribute(pts_canvas, 'data-points') == '64'
            assert p.inked_pixels(pts_canvas) > 200
        # the maps are the points, drawn in their tiles (no blurred heat tiles) ...
        n = len(rec['maps'])
        assert n >= len(rec['detections'])
        assert p.page.locator('#d-body .tile canvas.pts').count() == n
        assert p.page.locator('#d-body .tile canvas.heat').count() == 0
        assert p.inked_pixels('#d-body .tile canvas.pts') > 0
        assert p.page.text_content('#d-body .maps h3') == f'Maps ({n})'
        # ... and on the image when selected; the metadata says how many, no raw list
        p.page.locator('#d-body .tile').first.click()
        assert p.js('MMATTNVIS.state.sampling.map') == rec['maps'][0]['name']
        assert p.page.locator('#d-body .stage.main canvas.heat').is_hidden()
        meta = p.page.text_content('#d-meta')
        assert '64 sampling points' in meta and '[[' not in meta
        assert '[[' not in p.page.text_content('#d-record')
        assert p.errors == []
    finally:
        p.close()


# ----- cam -----------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def cam_report(images, tmp_path_factory, cpu):
    out = tmp_path_factory.mktemp('cam')
    mmattnvis('cam', images, *RETINA, '--method', *CAM_METHODS, '--drise-masks', '16',
              '--occlusion-grid', '2', '--topk', '2', '--out-dir', out / 'figs', '--report',
              out / 'report', *cpu)
    return str(out / 'report' / 'index.html')


def test_cam_report_has_every_methods_map_per_detection(browser, cam_report):
    p = open_report(browser, cam_report)
    try:
        check_common(p, 'retinanet_r18w32_fpn_shapes')
        assert p.js('MMATTNVIS.index.methods') == list(CAM_METHODS)
        image_with_detections(p)
        rec = p.js('MMATTNVIS.state.current')
        assert {d['cls'] for d in rec['detections']} <= set(SHAPES)
        # the explained detections (--topk 2): each has a map of every method
        ranks = [c['detection'] for c in rec['info']['columns'] if c['kind'] == 'detection']
        assert 1 <= len(ranks) <= 2 and set(ranks) <= {d['rank'] for d in rec['detections']}
        got = {(m['meta'].get('detection'), m['meta']['method']) for m in rec['maps']}
        assert {(r, m) for r in ranks for m in CAM_METHODS} <= got
        for r in ranks:
            tiles = p.page.locator(f'#d-body section.group[data-detection="{r}"] .tile')
            assert tiles.count() == len(CAM_METHODS)
        assert p.errors == []
    finally:
        p.close()


# ----- ablation ------------------------------------------------------------------------------
def test_ablation_report_names_classes(browser, images, tmp_path, cpu):
    one = tmp_path / 'one'
    one.mkdir()
    shutil.copy(DEMO[0], one)
    mmattnvis('ablation', one, *DINO, '--out-dir', tmp_path / 'figs', '--report',
              tmp_path / 'report', *cpu)
    p = open_report(browser, str(tmp_path / 'report' / 'index.html'))
    try:
        check_common(p, 'dino_slim_shapes')
        p.js('() => { location.hash = "#tab=ablation"; }')
        assert p.page.locator('#ablation-table tr').count() > 2
        image_with_detections(p)
        cells = p.page.locator('#d-body .settings td:nth-child(2)').all_text_contents()
        assert cells and set(cells) <= set(SHAPES), cells
        assert p.errors == []
    finally:
        p.close()


# ----- faithfulness --------------------------------------------------------------------------
def test_faithfulness_report_shows_layers_and_image_names(browser, tmp_path, cpu):
    data = tmp_path / 'data' / 'shapes' / 'test'
    tool('make_shapes', '--out-dir', data, '--num-images', '2', '--seed', '3', '--max-size',
         '160')
    mmattnvis('faithfulness', *RETINA, '--data', data, '--methods', 'gradcam',
              '--max-images', '1', '--steps', '3', '--topk', '1', '--out-dir', tmp_path / 'f',
              '--report', tmp_path / 'report', *cpu)
    p = open_report(browser, str(tmp_path / 'report' / 'index.html'))
    try:
        check_common(p, 'retinanet_r18w32_fpn_shapes')
        names = [e['name'] for e in p.js('MMATTNVIS.index.images')]
        files = sorted(os.listdir(data / 'images'))
        assert names == files[:1]  # the image's own name, not 'images__0000_...'
        assert 'neck' in p.js('MMATTNVIS.index.layers')
        p.js('() => { location.hash = "#tab=faithfulness"; }')
        head = p.page.locator('#faith-table tr').first.locator('th').all_text_contents()
        rows = p.js('MMATTNVIS.index.faithfulness')
        layers = {r['values']['method']: r['values']['layer'] for r in rows}
        assert layers == {'gradcam': 'neck', 'random': None}
        assert 'layer' in head
        assert all(r['map'] for r in rows)  # each row links to its map
        assert p.errors == []
    finally:
        p.close()


# ----- hooks through the runner --------------------------------------------------------------
HOOK_CFG = """_base_ = 'mmattnvis::shapes/dino_slim_shapes.py'
custom_hooks = [
    dict(type='mmattnvis.AttentionVisHook', mode='deformable', interval=1, max_samples=2,
         score_thr={thr}, fixed_samples=1, report_dir='report'),
    dict(type='mmattnvis.FeatMapVisHook', target_layers=['neck'], interval=1, max_samples=2,
         score_thr={thr}, fixed_samples=1, report_dir='report_featmap'),
]
_loader = dict(batch_size=2, num_workers=0, persistent_workers=False)
train_dataloader = _loader
val_dataloader = _loader
test_dataloader = _loader
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """A user's folder: shapes data in the layout the shipped configs expect (made with
    ``tools/make_shapes.py``) and a config adding the hooks with ``report_dir``."""
    root = tmp_path_factory.mktemp('project')
    for split, n in (('train', 4), ('val', 2), ('test', 2)):
        tool('make_shapes', '--out-dir', root / 'data' / 'shapes' / split, '--num-images', n,
             '--seed', {'train': 0, 'val': 1, 'test': 2}[split], '--max-size', '160')
    (root / 'my_dino.py').write_text(HOOK_CFG.format(thr=0.3))
    (root / 'my_dino_train.py').write_text(HOOK_CFG.format(thr=0.0))
    return root


RUNS = {'test': ('test', 'my_dino.py', DINO[1]), 'val': ('val', 'my_dino.py', DINO[1]),
        'train': ('train', 'my_dino_train.py')}


@pytest.fixture(scope='module', params=['test', 'val', 'train'])
def hook_reports(project, request):
    """``tools/test.py``, ``tools/val.py`` or ``tools/train.py`` run from the user's folder;
    the reports of both hooks. (``val`` needs #24.1's fix: MMEngine's ``CheckpointHook`` with
    the config's ``save_best`` fails after ``runner.val()`` without it.)"""
    loop = request.param
    cwd = os.getcwd()
    os.chdir(project)
    try:
        tool(*RUNS[loop], '--work-dir', f'work_{loop}')
    finally:
        os.chdir(cwd)
    return loop, {hook: str(project / f'work_{loop}' / d / loop / 'index.html')
                  for hook, d in (('attention', 'report'), ('featmap', 'report_featmap'))}


def test_hook_reports_name_classes_and_draw_points(browser, hook_reports):
    loop, reports = hook_reports
    p = open_report(browser, reports['attention'])
    try:
        check_common(p, 'my_dino')
        title = p.page.title()
        assert f'AttentionVisHook {loop}' in title and 'attention (deformable)' in title
        assert set(p.js('MMATTNVIS.index.classes')) <= set(SHAPES)
        image_with_detections(p)
        rec = p.js('MMATTNVIS.state.current')
        assert {d['cls'] for d in rec['detections']} <= set(SHAPES)
        d = rec['detections'][0]
        p.page.locator(f'#d-dets tr[data-rank="{d["rank"]}"]').click()
        assert p.js('MMATTNVIS.state.sampling.rank') == d['rank']
        assert p.inked_pixels('#d-body .stage.main canvas.pts') > 0
        assert p.errors == []
    finally:
        p.close()
    p = open_report(browser, reports['featmap'])
    try:
        check_common(p, 'my_dino')
        assert f'FeatMapVisHook {loop}' in p.page.title()
        image_with_detections(p)
        assert {d['cls'] for d in detections(p)} <= set(SHAPES)
        assert p.errors == []
    finally:
        p.close()
