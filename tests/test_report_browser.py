"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright.

The report is opened from ``file://`` (as a user opens it: no server). Skipped, with the reason,
when Playwright or ``/usr/bin/chromium`` is missing (``make test`` installs Chromium with
apt-get when it runs as root; Playwright comes with the ``tests`` extra).
"""
import os.path as osp

import cv2
import numpy as np
import pytest
from browser_utils import Page, launch_browser
from report_utils import (
    ablation_record,
    cam_record,
    deformable_record,
    detr_record,
    featmap_record,
    write_image,
    write_results,
)

from mmattnvis.report import build_report, colormap_lut
from mmattnvis.structures import infer_stride


@pytest.fixture(scope='module')
def browser():
    yield from launch_browser()


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    """A report of every kind of record: 3 DETR, 1 deformable, 2 featmap, 1 faithfulness
    (CAM maps + rows), 1 ablation."""
    d = tmp_path_factory.mktemp('report')
    img = lambda name, h, w, seed: write_image(str(d / name), h, w, seed)  # noqa: E731
    recs = [detr_record(img(f'detr{i}.jpg', 200, 300, i), i) for i in range(3)]
    recs.append(deformable_record(img('deform.jpg', 200, 300, 10), 10))
    recs += [featmap_record(img(f'feat{i}.jpg', 240, 320, 20 + i), 20 + i) for i in range(2)]
    recs.append(cam_record(img('cam.jpg', 240, 320, 30), 30, rows=True))
    recs.append(ablation_record(img('abl.jpg', 200, 300, 40), 40))
    results = write_results(str(d / 'results'), recs, 'attention')
    path = build_report(results, str(d / 'report'))
    return {'url': 'file://' + path, 'records': recs}


@pytest.fixture
def page(browser, report):
    p = Page(browser, report['url'])
    yield p
    p.context.close()


def _visible_cards(p: Page) -> int:
    return p.page.locator('#cards .card:not([hidden])').count()


def test_gallery_filters_count_cards(page, report):
    recs = report['records']
    assert _visible_cards(page) == len(recs)
    classes = page.js('MMATTNVIS.index.classes')
    page.page.select_option('#f-class', str(classes.index('square')))
    want = [r for r in recs if any(d.class_name == 'square' for d in r.detections)]
    assert 0 < len(want) < len(recs)
    assert _visible_cards(page) == len(want)
    assert page.page.text_content('#count') == f'{len(want)} of {len(recs)} images'
    # the score slider narrows the class filter; the other options' counts follow
    page.js('() => { const s = document.getElementById("f-score"); s.value = "0.75"; '
            's.dispatchEvent(new Event("input")); }')
    want = [r for r in recs if any(d.class_name == 'square' and round(d.score, 4) >= 0.75
                                   for d in r.detections)]
    assert _visible_cards(page) == len(want)
    n_circle = sum(any(d.class_name == 'circle' and round(d.score, 4) >= 0.75
                       for d in r.detections) for r in recs)
    label = page.page.locator(f'#f-class option[value="{classes.index("circle")}"]').text_content()
    assert label == f'circle ({n_circle})'
    # layer filter: only records with a map of that layer
    page.js('() => { const s = document.getElementById("f-score"); s.value = "0"; '
            's.dispatchEvent(new Event("input")); }')
    page.page.select_option('#f-class', '')
    layers = page.js('MMATTNVIS.index.layers')
    page.page.select_option('#f-layer', str(layers.index('stage3')))
    assert _visible_cards(page) == 2
    methods = page.js('MMATTNVIS.index.methods')
    page.page.select_option('#f-layer', '')
    page.page.select_option('#f-method', str(methods.index('gradcam')))
    assert _visible_cards(page) == 1
    assert page.errors == []


def _expected_colours(values: np.ndarray) -> np.ndarray:
    """The colours the page paints for ``values``: min-max to 0..255 (floor), jet LUT."""
    lut = np.asarray(colormap_lut('jet'), np.uint8)
    mn, mx = values.min(), values.max()
    idx = np.floor((values - mn) / (mx - mn) * 255).astype(int) if mx > mn else 0 * values
    return lut[np.clip(idx, 0, 255).astype(int)]


@pytest.mark.parametrize('token', [(3, 5), (0, 0), (5, 9)])
def test_click_shows_encoder_attention_both_ways(page, report, token):
    rec = report['records'][1]
    geom = rec.geometry
    gh, gw = rec.info['encoder_grid']
    stride = infer_stride(geom.input_shape, (gh, gw))
    assert stride == 32
    # the centre of the token's cell, in original-image pixels
    x, y = geom.input_to_image(((token[1] + 0.5) * stride, (token[0] + 0.5) * stride))
    page.open_image(1)
    stage = page.page.locator('#d-body .stage.main')
    box = stage.bounding_box()
    page.page.mouse.click(box['x'] + x / geom.ori_shape[1] * box['width'],
                          box['y'] + y / geom.ori_shape[0] * box['height'])
    page.page.wait_for_function('window.MMATTNVIS.state.encoder !== null')
    got = page.js('MMATTNVIS.state.encoder')
    tok = token[0] * gw + token[1]
    assert got['token'] == tok
    q = rec.arrays['encoder_attention'].astype(np.float64)
    s = rec.arrays['encoder_attention_scale'].astype(np.float64)
    row = q[tok] * s[tok] / 255  # what the point attends to
    col = q[:, tok] * s / 255  # what attends to the point
    np.testing.assert_array_equal(np.asarray(got['row']), row)
    np.testing.assert_array_equal(np.asarray(got['col']), col)
    for direction, values in (('to', row), ('from', col)):
        pixels = page.js(
            'd => { const c = document.querySelector(`#d-encoder canvas.enc[data-direction=${d}]`);'
            ' return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data); }',
            direction)
        rgba = np.asarray(pixels, np.uint8).reshape(gh, gw, 4)
        assert (rgba[..., 3] == 255).all()
        np.testing.assert_array_equal(rgba[..., :3], _expected_colours(values).reshape(gh, gw, 3))
    assert page.page.get_attribute('#d-encoder', 'data-token') == str(tok)
    assert page.errors == []


def test_click_on_deformable_detection_shows_its_sampling_points(page, report):
    rec = report['records'][3]
    page.open_image(3)
    boxes = [d.bbox for d in rec.detections]
    # a point inside the first detection's box and no other
    pt = next((x, y) for y in np.linspace(boxes[0][1] + 1, boxes[0][3] - 1, 15)
              for x in np.linspace(boxes[0][0] + 1, boxes[0][2] - 1, 15)
              if not any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes[1:]))
    box = page.page.locator('#d-body .stage.main').bounding_box()
    page.page.mouse.click(box['x'] + pt[0] / 300 * box['width'],
                          box['y'] + pt[1] / 200 * box['height'])
    got = page.js('MMATTNVIS.state.sampling')
    assert got['rank'] == rec.detections[0].rank
    np.testing.assert_allclose(np.asarray(got['points']), rec.arrays['sampling_points/0'],
                               atol=1e-3)
    strongest = rec.arrays['sampling_points/0'][np.argmax(rec.arrays['sampling_points/0'][:, 2])]
    alpha = page.js('p => document.querySelector("#d-body canvas.pts").getContext("2d")'
                    '.getImageData(Math.round(p[0]), Math.round(p[1]), 1, 1).data[3]',
                    [float(strongest[0]), float(strongest[1])])
    assert alpha > 0
    assert page.errors == []


def test_faithfulness_table_sorts_and_links_to_maps(page, report):
    rec = report['records'][6]
    page.js('() => { location.hash = "#tab=faithfulness"; }')
    page.page.wait_for_selector('#faithfulness-view:not([hidden])')
    n = len(rec.info['rows'])
    assert page.page.locator('#faith-table tr').count() == n + 1
    # the mean per method, empty cells left out
    rows = rec.info['rows']
    for method in ('gradcam', 'eigencam', 'random'):
        cells = page.page.locator(f'#faith-summary tr[data-method="{method}"] td')
        heads = page.js('Array.from(document.querySelectorAll("#faith-summary th"))'
                        '.map(t => t.textContent)')
        got = dict(zip(heads, cells.all_text_contents()))
        mine = [r for r in rows if r['method'] == method]
        assert got['rows'] == str(len(mine))
        dels = [r['deletion_auc'] for r in mine if r['deletion_auc'] is not None]
        assert got['deletion_auc'] == (f'{np.mean(dels):.4f}' if dels else '—')

    def column(name):
        cols = page.js('Array.from(document.querySelectorAll("#faith-table th"))'
                       '.map(t => t.dataset.col)')
        k = cols.index(name)
        return [r[k] for r in page.js('Array.from(document.querySelectorAll("#faith-table tr"))'
                                      '.slice(1).map(r => Array.from(r.cells).map(c => '
                                      'c.textContent))')]

    page.page.click('#faith-table th[data-col="deletion_auc"]')
    vals = column('deletion_auc')
    nums = [float(v) for v in vals if v != '—']
    assert nums == sorted(nums) and vals[len(nums):] == ['—'] * (len(vals) - len(nums))
    page.page.click('#faith-table th[data-col="deletion_auc"]')
    nums = [float(v) for v in column('deletion_auc') if v != '—']
    assert nums == sorted(nums, reverse=True)
    # a row opens its image with the map it was measured on
    row = page.page.locator('#faith-table tr.link').first
    href = row.get_attribute('data-href')
    heads = page.js('Array.from(document.querySelectorAll("#faith-table th"))'
                    '.map(t => t.dataset.col)')
    cells = dict(zip(heads, row.locator('td').all_text_contents()))
    row.click()
    page.page.wait_for_function('window.MMATTNVIS.state.current !== null')
    name = page.js('MMATTNVIS.state.current.maps[MMATTNVIS.state.map].name')
    assert href.endswith('m=' + name.replace('/', '%2F'))
    m = rec.maps[name]
    assert (m.meta['method'], str(m.meta['detection'])) == (cells['method'], cells['detection'])
    assert page.page.text_content('#d-map-title').startswith(name)
    page.page.wait_for_selector(f'#d-body .stage.main canvas.heat[data-map="{name}"]')
    assert page.errors == []


def test_keys_walk_the_filtered_images(page, report):
    recs = report['records']
    classes = page.js('MMATTNVIS.index.classes')
    page.page.select_option('#f-class', str(classes.index('circle')))
    shown = [i for i, r in enumerate(recs) if any(d.class_name == 'circle' for d in r.detections)]
    assert len(shown) >= 2
    page.page.locator('#cards .card:not([hidden])').first.click()
    page.page.wait_for_function(f'window.MMATTNVIS.state.current && '
                                f'window.MMATTNVIS.state.current.index === {shown[0]}')
    page.page.keyboard.press('ArrowRight')
    page.page.wait_for_function(f'window.MMATTNVIS.state.current && '
                                f'window.MMATTNVIS.state.current.index === {shown[1]}')
    page.page.keyboard.press('ArrowLeft')
    page.page.wait_for_function(f'window.MMATTNVIS.state.current && '
                                f'window.MMATTNVIS.state.current.index === {shown[0]}')
    page.page.keyboard.press('ArrowDown')  # next map of the image
    assert page.js('MMATTNVIS.state.map') == 0
    page.page.keyboard.press('Escape')
    page.page.wait_for_selector('#detail', state='hidden')
    assert page.errors == []


def test_ablation_tables(page, report):
    rec = report['records'][7]
    page.open_image(7)
    tables = page.page.locator('#d-body .settings table')
    assert tables.count() == len(rec.info['settings'])
    for k, s in enumerate(rec.info['settings']):
        assert tables.nth(k).locator('tr').count() == len(s['detections']) + 1
    page.js('() => { location.hash = "#tab=ablation"; }')
    page.page.wait_for_selector('#ablation-view:not([hidden])')
    assert page.page.locator('#ablation-table tr').count() == 3
    assert page.errors == []


def _not_blank(png: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 20  # not one flat colour
    assert len(np.unique(img.reshape(-1, 3) // 8, axis=0)) > 200  # pictures, not just text
    return img


def test_screenshots_are_not_blank(page, report, tmp_path):
    page.page.wait_for_function('Array.from(document.querySelectorAll("#cards img"))'
                                '.every(i => i.complete && i.naturalWidth > 0)')
    _not_blank(page.page.screenshot())
    page.open_image(0)
    page.page.wait_for_selector('#d-body .tile canvas.heat[data-map]')  # tiles in view painted
    page.page.locator('#d-body .tile').first.click()
    page.page.wait_for_selector('#d-body .stage.main canvas.heat[data-map]')
    _not_blank(page.page.screenshot(full_page=True))
    assert page.errors == []


def test_heat_map_drawn_where_the_geometry_puts_it(browser, tmp_path):
    """The page draws a stored map at full resolution with the colormap of render.colorize: a
    hot feature cell of a letterboxed input lands on its image pixels, the padding is cropped."""
    from mmattnvis.structures import ImageGeometry, Map2D, ResultRecord
    img = write_image(str(tmp_path / 'x.jpg'), 100, 200, 0)
    geom = ImageGeometry((100, 200), (200, 200), (0.0, 50.0, 200.0, 150.0))
    fmap = np.zeros((20, 20), np.float32)
    fmap[12, 4] = 1.0  # input pixels x 40..50, y 120..130 -> image x 40..50, y 70..80
    rec = ResultRecord(img, geom, 'featmap', maps={'m': Map2D(fmap, 'm', {'kind': 'featmap'})})
    p = Page(browser, 'file://' + build_report([rec], str(tmp_path / 'rep')))
    try:
        p.open_image(0)
        p.page.locator('#d-body .tile').first.click()
        p.page.wait_for_selector('#d-body .stage.main canvas.heat[data-map="m"]')
        rgba = np.asarray(p.js('() => { const c = document.querySelector("#d-body .stage.main '
                               'canvas.heat"); return [c.width, c.height].concat(Array.from('
                               'c.getContext("2d").getImageData(0, 0, c.width, c.height)'
                               '.data)); }'))
        w, h = rgba[:2]
        rgba = rgba[2:].reshape(h, w, 4).astype(np.uint8)
        assert (w, h) == (200, 100)
        lut = np.asarray(colormap_lut('jet'), np.uint8)
        np.testing.assert_array_equal(rgba[75, 45, :3], lut[255])
        np.testing.assert_array_equal(rgba[20, 150, :3], lut[0])
        red = rgba[..., 0].astype(int) - rgba[..., 2].astype(int)
        ys, xs = np.nonzero(red == red.max())
        assert 70 <= ys.min() and ys.max() < 80 and 40 <= xs.min() and xs.max() < 50
        assert p.errors == []
    finally:
        p.context.close()


def test_real_detr_run(browser, tmp_path):
    """A real forward pass of a small DETR (random weights, ResNet-18): its saved records make a
    report whose encoder click shows the stored row and column; the stride-32 token grid reaches
    past the padded input (155 x 192 input, 5 x 6 tokens)."""
    from report_utils import real_attention_record

    from mmattnvis.sinks.records import load_results

    from detr_utils import small_detr
    image = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'demo', 'images',
                     'shapes_1.jpg')
    record = real_attention_record(small_detr('detr'), image)
    results = write_results(str(tmp_path / 'results'), [record], 'attention')
    rec = load_results(results)[1][0]
    gh, gw = rec.info['encoder_grid']
    stride = infer_stride(rec.geometry.input_shape, (gh, gw))
    assert stride == 32 and gh * stride > rec.geometry.input_shape[0]
    p = Page(browser, 'file://' + build_report(results, str(tmp_path / 'rep')))
    try:
        p.open_image(0)
        n_tiles = p.page.locator('#d-body table.grid .tile').count()
        assert n_tiles == len(rec.maps) == 3 * 2 * 8  # detections x layers x heads
        geom = rec.geometry
        box = p.page.locator('#d-body .stage.main').bounding_box()
        q = rec.arrays['encoder_attention'].astype(np.float64)
        s = rec.arrays['encoder_attention_scale'].astype(np.float64)
        for r, c in ((1, 2), (gh - 2, gw - 1)):
            x, y = geom.input_to_image(((c + 0.5) * stride, (r + 0.5) * stride))
            p.page.mouse.click(box['x'] + x / geom.ori_shape[1] * box['width'],
                               box['y'] + y / geom.ori_shape[0] * box['height'])
            tok = r * gw + c
            p.page.wait_for_function(f'window.MMATTNVIS.state.encoder && '
                                     f'window.MMATTNVIS.state.encoder.token === {tok}')
            got = p.js('MMATTNVIS.state.encoder')
            np.testing.assert_array_equal(np.asarray(got['row']), q[tok] * s[tok] / 255)
            np.testing.assert_array_equal(np.asarray(got['col']), q[:, tok] * s / 255)
        assert p.errors == []
    finally:
        p.context.close()
