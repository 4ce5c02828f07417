"""HTML report of a big run: 500 images x 3 layers of synthetic feature-map records.

Builds the report, measures its size on disk (goal < 50 MB) and how fast it opens in Debian's
headless Chromium from ``file://`` (goal < 2 s to the load event and to the first cards
showing their thumbnails); median over ``--opens`` fresh pages. Needs Playwright and
``/usr/bin/chromium`` for the open time (else only the size is measured)::

    python benchmarks/bench_report.py [--images 500] [--layers 3] [--keep DIR]
"""
import argparse
import os
import os.path as osp
import shutil
import statistics
import sys
import tempfile
import time
from typing import Dict, List

from common import ROOT

sys.path.insert(0, osp.join(ROOT, 'tests'))

from report_utils import detr_record, featmap_record, write_image, write_results  # noqa: E402

from mmattnvis.report import build_report  # noqa: E402

CHROMIUM = '/usr/bin/chromium'


def folder_size(path: str) -> int:
    """Bytes of every file under ``path``."""
    return sum(osp.getsize(osp.join(d, f)) for d, _, files in os.walk(path) for f in files)


def make_results(root: str, images: int, layers: int, shape=(480, 640)) -> str:
    """``images`` synthetic photos and their records (``layers`` maps each) in ``root``."""
    names = [f'stage{k + 2}' for k in range(layers)]
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    recs = [featmap_record(write_image(osp.join(root, 'images', f'{i:04d}.jpg'), *shape, i), i,
                           layers=names, shape=shape, n_dets=3) for i in range(images)]
    return write_results(osp.join(root, 'results'), recs, 'featmap')


def open_times(index_html: str, opens: int) -> Dict[str, float]:
    """Median seconds to the load event, to the first 8 cards with decoded thumbnails, and
    from asking for an image's detail view to its first map drawn."""
    from playwright.sync_api import sync_playwright
    load: List[float] = []
    cards: List[float] = []
    detail: List[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=['--headless', '--no-sandbox'])
        for _ in range(opens):
            ctx = browser.new_context(viewport={'width': 1280, 'height': 900})
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto('file://' + index_html, wait_until='load')
            load.append(time.perf_counter() - t0)
            page.wait_for_function(
                'Array.from(document.querySelectorAll("#cards .card img")).slice(0, 8)'
                '.every(i => i.complete && i.naturalWidth > 0)')
            cards.append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # an image's detail view: its data file, a map painted
            page.evaluate('() => { location.hash = "#i=250"; }')
            page.wait_for_selector('#d-body .tile')
            page.locator('#d-body .tile').first.click()
            page.wait_for_selector('#d-body .stage.main canvas.heat[data-map]')
            detail.append(time.perf_counter() - t0)
            ctx.close()
        browser.close()
    return {'load_s': statistics.median(load), 'first_cards_s': statistics.median(cards),
            'detail_s': statistics.median(detail)}


def detr_detail(root: str) -> Dict[str, float]:
    """One DETR-R50-sized image (800x1199, 25 x 38 = 950 encoder tokens, 6 layers x 8 heads,
    10 detections): the size of its data file and the seconds from asking for its detail view
    to the encoder attention of a clicked point drawn (median of 3)."""
    from playwright.sync_api import sync_playwright
    rec = detr_record(write_image(osp.join(root, 'detr.jpg'), 800, 1199, 0), 0,
                      shape=(800, 1199), grid=(25, 38), layers=6, heads=8, n_dets=10)
    out = osp.dirname(build_report([rec], osp.join(root, 'detr_report')))
    times: List[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=['--headless', '--no-sandbox'])
        for _ in range(3):
            page = browser.new_page(viewport={'width': 1280, 'height': 900})
            page.goto('file://' + osp.join(out, 'index.html'))
            t0 = time.perf_counter()
            page.evaluate('() => { location.hash = "#i=0"; }')
            page.wait_for_selector('#d-body .stage.main')
            box = page.locator('#d-body .stage.main').bounding_box()
            page.mouse.click(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)
            page.wait_for_function('window.MMATTNVIS.state.encoder !== null')
            times.append(time.perf_counter() - t0)
            page.close()
        browser.close()
    return {'data_mb': osp.getsize(osp.join(out, 'data', 'r00000.js')) / 1e6,
            'maps': len(rec.maps), 'click_s': statistics.median(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--images', type=int, default=500)
    parser.add_argument('--layers', type=int, default=3)
    parser.add_argument('--opens', type=int, default=3, help='page opens to take the median of')
    parser.add_argument('--keep', default=None, help='build here and keep it (default: temp)')
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix='bench_report_')
    try:
        t0 = time.perf_counter()
        results = make_results(root, args.images, args.layers)
        t_rec = time.perf_counter() - t0
        t0 = time.perf_counter()
        index_html = build_report(results, osp.join(root, 'report'))
        t_build = time.perf_counter() - t0
        out = osp.dirname(index_html)
        size = folder_size(out)
        print(f'{args.images} images x {args.layers} layers (480x640): records {t_rec:.1f} s, '
              f'report built in {t_build:.1f} s')
        print(f'report size: {size / 1e6:.1f} MB (goal < 50 MB); thumbnails '
              f'{folder_size(osp.join(out, "thumbs")) / 1e6:.1f} MB, images '
              f'{folder_size(osp.join(out, "images")) / 1e6:.1f} MB, data (maps as aligned '
              'grey PNG/JPEG, loaded per image) '
              f'{folder_size(osp.join(out, "data")) / 1e6:.2f} MB (index.js '
              f'{osp.getsize(osp.join(out, "data", "index.js")) / 1e3:.0f} kB)')
        try:
            import playwright  # noqa: F401
            have = osp.isfile(CHROMIUM)
        except ImportError:
            have = False
        if have:
            t = open_times(index_html, args.opens)
            print(f'open in headless chromium (median of {args.opens}): load event '
                  f'{t["load_s"]:.2f} s, first cards visible {t["first_cards_s"]:.2f} s '
                  f'(goal < 2 s); an image\'s detail view with a map drawn {t["detail_s"]:.2f} s')
            d = detr_detail(root)
            print(f'DETR image (950 encoder tokens, {d["maps"]} cross-attention maps): data file '
                  f'{d["data_mb"]:.2f} MB, detail view to encoder attention of a clicked point '
                  f'drawn {d["click_s"]:.2f} s')
        else:
            print('open time not measured: needs playwright and /usr/bin/chromium')
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
