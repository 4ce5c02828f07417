"""Regenerate the README's pictures in docs/images/ from CLI runs, as a user types them.

    python scripts/make_readme_images.py                    # every picture
    python scripts/make_readme_images.py --only report      # docs/images/report.png only

* ``report.png``: ``mmattnvis attn demo/images <shipped DINO> --mode deformable --report R``,
  opened in Debian's headless Chromium (Playwright), the first detection clicked so that its
  query's sampling points are drawn, the maps panel in view;
* ``demo_featmaps_yolov5n.jpg``, ``demo_attention_dino.jpg``: ``mmattnvis featmap`` / ``attn``
  as ``mmattnvis demo`` runs them on ``demo/images/shapes_demo.png``;
* ``cam_yolov5n.jpg``: ``mmattnvis cam`` (Grad-CAM, HiResCAM, EigenCAM) on the same image;
* ``errors_dino.jpg``: ``tools/test.py`` with ``--errors`` on the shipped DINO over generated
  shapes test images (``tools/make_shapes.py --seed 2``, the held-out set), a gallery of the
  errors with their D-RISE maps (false boxes red, missed objects green).

Every run starts from the repository root with relative paths, so no absolute path of the machine
that made the pictures can show in them. The YOLOv5-n pictures need MMYOLO.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DINO = ['mmattnvis::shapes/dino_slim_shapes.py', 'mmattnvis::shapes/dino_slim_shapes.pth']
YOLO = ['mmattnvis::shapes/yolov5_n_shapes.py', 'mmattnvis::shapes/yolov5_n_shapes.pth']
DEMO_IMAGE = osp.join('demo', 'images', 'shapes_demo.png')
PARTS = ('report', 'featmap', 'attention', 'cam', 'errors')


def mmattnvis(*argv: str) -> None:
    """``mmattnvis <command> ...`` (the console script's entry point, in this process)."""
    from mmattnvis.cli.main import main
    rc = main([str(a) for a in argv])
    if rc != 0:
        raise SystemExit(f'mmattnvis {" ".join(map(str, argv))} failed ({rc})')


def report_run(work: str, device: str = 'cpu') -> str:
    """The deformable DINO report of the demo images; returns its ``index.html``."""
    report = osp.join(work, 'report')
    mmattnvis('attn', osp.join('demo', 'images'), *DINO, '--mode', 'deformable',
              '--out-dir', osp.join(work, 'figures'), '--report', report, '--device', device)
    return osp.join(report, 'index.html')


def screenshot_report(index_html: str, out_png: str, image: int = 0,
                      chromium: str = '/usr/bin/chromium') -> Dict[str, object]:
    """Open the report at ``image``, click its highest-scoring detection, screenshot 1280x720.

    Returns what the page showed (for the test): the page text, the number of maps and the
    sampling points drawn.
    """
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=['--headless', '--no-sandbox'])
        try:
            page = browser.new_page(viewport={'width': 1280, 'height': 720})
            page.goto('file://' + osp.abspath(index_html) + f'#i={image}')
            page.wait_for_function('window.MMATTNVIS && window.MMATTNVIS.state.current')
            rec = page.evaluate('MMATTNVIS.state.current')
            d = rec['detections'][0]
            box = page.locator('#d-body .stage.main').bounding_box()
            # the box's centre, unless another box's centre is nearer the click
            page.mouse.click(box['x'] + (d['bbox'][0] + d['bbox'][2]) / 2 / rec['width'] * box[
                'width'], box['y'] + (d['bbox'][1] + d['bbox'][3]) / 2 / rec['height'] * box[
                    'height'])
            page.wait_for_function('window.MMATTNVIS.state.sampling !== null')
            shown = {'text': page.evaluate('document.body.innerText'),
                     'maps': len(rec['maps']),
                     'points': len(page.evaluate('MMATTNVIS.state.sampling.points')),
                     'title': page.title()}
            page.screenshot(path=out_png)
        finally:
            browser.close()
    return shown


def figure(work: str, out_jpg: str, argv: List[str], width: int = 900) -> None:
    """Run a figure tool into ``work`` and save its one figure as ``out_jpg`` (``width`` px)."""
    import cv2
    out_dir = osp.join(work, osp.splitext(osp.basename(out_jpg))[0])
    mmattnvis(*argv, '--out-dir', out_dir)
    made = sorted(osp.join(r, f) for r, _, fs in os.walk(out_dir) for f in fs)
    img = cv2.imread(made[0])
    h, w = img.shape[:2]
    if w > width:
        img = cv2.resize(img, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    cv2.imwrite(out_jpg, img, [cv2.IMWRITE_JPEG_QUALITY, 88])


def errors_gallery(work: str, out_jpg: str, num_images: int = 24, max_panels: int = 8,
                   device: str = 'cpu', score_thr: float = 0.5) -> Dict[str, int]:
    """``tools/test.py <DINO> --errors --errors-score-thr 0.5`` on generated test images; the
    errors with maps as one gallery (the missed ones first, at most 3 of a kind). Returns the
    count of each kind shown."""
    import glob
    import subprocess

    import cv2

    from mmattnvis.render.layout import Sheet
    from mmattnvis.sinks.records import load_record
    from mmattnvis.visualization.task_figures import error_panels
    data = osp.join(work, 'data', 'shapes')
    subprocess.run([sys.executable, osp.join('tools', 'make_shapes.py'), '--out-dir',
                    osp.join(data, 'test'), '--num-images', str(num_images), '--seed', '2'],
                   check=True)
    cmd = [sys.executable, osp.join('tools', 'test.py'), *DINO, '--errors',
           '--errors-score-thr', str(score_thr),
           '--work-dir', osp.join(work, 'errors_run'), '--cfg-options',
           f'test_dataloader.dataset.data_root={data}/',
           f'test_evaluator.ann_file={data}/test/annotations.json']
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='' if device == 'cpu' else
               os.environ.get('CUDA_VISIBLE_DEVICES', ''))
    subprocess.run(cmd, check=True, env=env)
    panels = []
    paths = sorted(glob.glob(osp.join(work, 'errors_run', 'errors', 'test', 'records',
                                      '*.json')))
    for path in paths:
        record = load_record(path)
        image = cv2.imread(record.image_path)[..., ::-1] if record.image_path else None
        if image is None:
            continue
        panels += error_panels(record, image, cell_width=240)
    chosen: List[object] = []
    kinds: Dict[str, int] = {}
    for panel in sorted(panels, key=lambda p: not p.caption.startswith('missed')):
        kind = panel.caption.split(':')[0]
        if kinds.get(kind, 0) < 3 and len(chosen) < max_panels:
            kinds[kind] = kinds.get(kind, 0) + 1
            chosen.append(panel)
    if not chosen:
        raise SystemExit('the DINO made no error with a map on these images')
    sheet = Sheet(chosen, cols=4, title='Shapes DINO errors: D-RISE maps (false box red, missed '
                  "object green); 'best query': the query's sampling points")
    cv2.imwrite(out_jpg, sheet.render()[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    return kinds


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', nargs='+', choices=PARTS, default=list(PARTS))
    parser.add_argument('--out-dir', default=osp.join('docs', 'images'))
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # relative paths only: nothing of this machine in the pictures
    out = args.out_dir
    with tempfile.TemporaryDirectory(dir=ROOT, prefix='.readme-images-') as tmp:
        work = osp.relpath(tmp, ROOT)
        if 'report' in args.only:
            shown = screenshot_report(report_run(work, args.device), osp.join(out, 'report.png'))
            print(f"report.png: {shown['maps']} maps, {shown['points']} points drawn")
        dev = ['--device', args.device]
        if 'featmap' in args.only:
            figure(work, osp.join(out, 'demo_featmaps_yolov5n.jpg'),
                   ['featmap', DEMO_IMAGE, *YOLO, '--target-layers', 'neck',
                    '--channel-reduction', 'squeeze_mean', *dev])
        if 'attention' in args.only:
            figure(work, osp.join(out, 'demo_attention_dino.jpg'),
                   ['attn', DEMO_IMAGE, *DINO, '--mode', 'deformable', '--layers', '-1',
                    '--max-queries', '4', '--cell-width', '256', *dev])
        if 'cam' in args.only:
            figure(work, osp.join(out, 'cam_yolov5n.jpg'),
                   ['cam', DEMO_IMAGE, *YOLO, '--method', 'gradcam', 'hirescam', 'eigencam',
                    '--target-layers', 'neck', *dev])
        if 'errors' in args.only:
            shown = errors_gallery(work, osp.join(out, 'errors_dino.jpg'), device=args.device)
            print(f'errors_dino.jpg: {shown}')
    print(f'written to {out}/: {", ".join(args.only)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
