"""Make docs/images/report.png: the report of the shipped shapes DINO on the demo images, opened
in Debian's headless Chromium (Playwright) with the sampling points of a detection shown.

    python scripts/report_screenshot.py [--out docs/images/report.png]
"""
import argparse
import os.path as osp
import sys
import tempfile

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tests'))

from report_utils import real_attention_record, write_results  # noqa: E402

from mmattnvis.apis import init_model, shipped_model  # noqa: E402
from mmattnvis.report import build_report  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default=osp.join(ROOT, 'docs', 'images', 'report.png'))
    args = parser.parse_args()
    model = init_model(*shipped_model('dino_slim_shapes'), device='cpu')
    images = [osp.join(ROOT, 'demo', 'images', f'shapes_{i}.jpg') for i in (1, 2)]
    records = [real_attention_record(model, p, max_dets=6, score_thr=0.3) for p in images]
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as tmp:
        results = write_results(osp.join(tmp, 'results'), records, 'attention',
                                {'tool': 'attn_vis', 'model': 'mmattnvis::shapes/dino_slim_shapes'})
        index_html = build_report(results, osp.join(tmp, 'report'))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path='/usr/bin/chromium',
                                        args=['--headless', '--no-sandbox'])
            page = browser.new_page(viewport={'width': 1280, 'height': 720})
            page.goto('file://' + index_html + '#i=0')
            page.wait_for_selector('#d-body .stage.main')
            d = records[0].detections[0]
            h, w = records[0].geometry.ori_shape
            box = page.locator('#d-body .stage.main').bounding_box()
            page.mouse.click(box['x'] + float(d.bbox[0] + d.bbox[2]) / 2 / w * box['width'],
                             box['y'] + float(d.bbox[1] + d.bbox[3]) / 2 / h * box['height'])
            page.wait_for_function('window.MMATTNVIS.state.sampling !== null')
            page.screenshot(path=args.out)
            browser.close()
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
