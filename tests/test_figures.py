"""Paper-ready figures (issue 24.9), through the CLIs as a user runs them: one label size and
format, labels that never overlap, vector output that holds the labels as text, the shared
figure flags (--no-boxes, --no-labels, --colorbar, --save-panels, --format) on every image tool,
titles on the hook's PNGs, and the legend of sampling-point figures."""
import os
import os.path as osp
import re
import xml.etree.ElementTree as ET
import zlib

import cv2
import numpy as np
import pytest

from mmattnvis.cli import attn_vis, cam_vis, featmap_vis, head_ablation

from conftest import ROOT, SHARED_IMAGES, YOLOV5N_CONFIG, YOLOV5N_WEIGHTS, needs_shared

YOLO_SHAPES = 'mmattnvis::shapes/yolov5_n_shapes.py'
YOLO_SHAPES_PTH = 'mmattnvis::shapes/yolov5_n_shapes.pth'
DINO = 'mmattnvis::shapes/dino_slim_shapes.py'
DINO_PTH = 'mmattnvis::shapes/dino_slim_shapes.pth'
SHAPES_IMG = osp.join(ROOT, 'demo', 'images', 'shapes_1.jpg')
SVG = '{http://www.w3.org/2000/svg}'
LABEL = re.compile(r'^[A-Za-z][\w ]* \d\.\d\d$')  # "bird 0.69"


def _run(mod, args, capfd):
    rc = mod.main([str(a) for a in args])
    out, err = capfd.readouterr()
    assert rc == 0, err[-2000:]
    return out


def _svg(path):
    """``(texts, label rectangles)`` of an SVG written by the tools: every ``<text>`` with its
    font size, and the ``x0, y0, x1, y1`` of every label background (``id="labelN"``)."""
    root = ET.parse(path).getroot()
    texts = []
    for t in root.iter(f'{SVG}text'):
        size = re.search(r'font[^;]*?([\d.]+)px', t.get('style', ''))
        texts.append((''.join(t.itertext()).strip(), float(size.group(1)) if size else None))
    rects = []
    for g in root.iter(f'{SVG}g'):
        if re.fullmatch(r'label\d+', g.get('id', '')):
            path = next(g.iter(f'{SVG}path'))
            nums = [float(v) for v in re.findall(r'-?\d+(?:\.\d+)?', path.get('d'))]
            xs, ys = nums[0::2], nums[1::2]
            rects.append((min(xs), min(ys), max(xs), max(ys)))
    return texts, rects


def _pdf_texts(data: bytes):
    """The strings of every ``[...] TJ`` / ``(...) Tj`` of a PDF's (deflated) content streams."""
    out = []
    for m in re.finditer(rb'stream\r?\n(.*?)\r?\nendstream', data, re.S):
        try:
            content = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        for arr in re.finditer(rb'\[(.*?)\]\s*TJ|(\(.*?(?<!\\)\))\s*Tj', content, re.S):
            body = arr.group(1) or arr.group(2)
            pieces = re.findall(rb'\((.*?)(?<!\\)\)', body, re.S)
            out.append(b''.join(pieces).decode('latin-1'))
    return out


def _disjoint(rects):
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            if a[0] < b[2] - 0.01 and b[0] < a[2] - 0.01 and a[1] < b[3] - 0.01 and \
                    b[1] < a[3] - 0.01:
                return False
    return True


@needs_shared
def test_featmap_dog_labels_do_not_overlap_svg_pdf_and_panels(tmp_path, capfd):
    """The COCO YOLOv5-n on the dog photo: bicycle / car / truck labels used to cover each
    other; now the SVG's label boxes are disjoint, every label reads "<class> 0.00", the PDF
    holds the same labels as text, and --save-panels writes one file per map."""
    dog = osp.join(SHARED_IMAGES, 'dog.jpg')
    common = [dog, YOLOV5N_CONFIG, YOLOV5N_WEIGHTS, '--target-layers', 'neck',
              '--channel-reduction', 'squeeze_mean', '--device', 'cpu']
    _run(featmap_vis, common + ['--format', 'svg', '--save-panels', '--out-dir', tmp_path / 's'],
         capfd)
    files = sorted(os.listdir(tmp_path / 's'))
    assert files[0] == 'dog.svg' and len(files) == 1 + 3  # the figure + one per FPN level
    assert all(re.fullmatch(r'dog_panel0\d_neck\.\d.*\.svg', f) for f in files[1:])
    texts, rects = _svg(tmp_path / 's' / 'dog.svg')
    labels = [(t, s) for t, s in texts if LABEL.match(t)]
    # 5 detections on each of 3 panels
    assert len(labels) == 3 * 5 and len(rects) == len(labels)
    assert {t.split()[0] for t, _ in labels} >= {'dog', 'bicycle', 'car', 'truck'}
    assert len({s for _, s in labels}) == 1  # one label size
    assert _disjoint(rects)
    assert any(t.startswith('neck.0') for t, _ in texts)  # panel titles are text too

    _run(featmap_vis, common + ['--format', 'pdf', '--out-dir', tmp_path / 'p'], capfd)
    data = (tmp_path / 'p' / 'dog.pdf').read_bytes()
    assert data.startswith(b'%PDF')
    assert 'dog 0.' in ' '.join(_pdf_texts(data))


def test_cam_figure_one_label_format_colorbar_and_no_boxes(tmp_path, capfd):
    """A CAM figure: the image-level column and the per-detection ones use the same label
    size and format; --colorbar adds the colormap's ramp under the grid; --no-boxes and
    --no-labels leave them out."""
    args = [SHAPES_IMG, YOLO_SHAPES, YOLO_SHAPES_PTH, '--method', 'gradcam', '--topk', '3',
            '--device', 'cpu', '--cell-width', '240']
    _run(cam_vis, args + ['--format', 'svg', '--out-dir', tmp_path / 's'], capfd)
    texts, rects = _svg(tmp_path / 's' / 'shapes_1.svg')
    labels = [(t, s) for t, s in texts if LABEL.match(t)]
    assert len(labels) >= 6 and len({s for _, s in labels}) == 1
    assert not [t for t, _ in texts if re.search(r': \d+\.\d$', t)]  # no "bird: 68.7"

    _run(cam_vis, args + ['--colorbar', '--out-dir', tmp_path / 'c'], capfd)
    _run(cam_vis, args + ['--out-dir', tmp_path / 'n'], capfd)
    with_bar = cv2.imread(str(tmp_path / 'c' / 'shapes_1.png'))[..., ::-1]
    plain = cv2.imread(str(tmp_path / 'n' / 'shapes_1.png'))[..., ::-1]
    assert with_bar.shape[1] == plain.shape[1] and with_bar.shape[0] > plain.shape[0] + 20
    bar = with_bar[plain.shape[0]:]
    jet = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0,
                                                                                        ::-1]
    row = bar[12]  # through the bar (8-px margin above it)
    # the bar runs through the colormap from its low end (left) to its high end (right)
    dist = lambda px, lo, hi: np.abs(jet[lo:hi].astype(int) - px.astype(int)).sum(1).min()  # noqa: E731
    assert dist(row[10], 0, 16) < 40 and dist(row[-11], 240, 256) < 40
    assert dist(row[len(row) // 2], 112, 144) < 40

    _run(cam_vis, args + ['--no-labels', '--format', 'svg', '--out-dir', tmp_path / 'l'], capfd)
    texts, rects = _svg(tmp_path / 'l' / 'shapes_1.svg')
    # no box label left: only the three detection columns' headers read "<class> 0.00"
    assert not rects and len([t for t, _ in texts if LABEL.match(t)]) == 3
    _run(cam_vis, args + ['--no-boxes', '--out-dir', tmp_path / 'b'], capfd)
    nobox = cv2.imread(str(tmp_path / 'b' / 'shapes_1.png'))
    assert nobox.shape == plain.shape[:2] + (3, )
    assert np.abs(nobox.astype(int) - plain[..., ::-1]).sum() > 0


def test_deformable_figure_title_panels_and_legend_agree(tmp_path, capfd):
    """attn --mode deformable: the title says "all heads" as the panels do (not "heads:
    mean"), a legend names the levels' colours and the point sizes; --save-panels writes one
    file per panel."""
    _run(attn_vis, [SHAPES_IMG, DINO, DINO_PTH, '--mode', 'deformable', '--max-queries', '2',
                    '--device', 'cpu', '--format', 'svg', '--save-panels', '--out-dir',
                    tmp_path], capfd)
    texts = [t for t, _ in _svg(tmp_path / 'shapes_1.svg')[0]]
    title = [t for t in texts if t.startswith('shapes_1.jpg:')][0]
    assert 'all heads' in title and 'mean' not in title
    assert any(t.endswith('all heads') for t in texts if t.startswith('L'))
    assert 'level 0' in texts and 'high weight' in texts and 'low weight' in texts
    panels = [f for f in os.listdir(tmp_path) if '_panel' in f]
    assert len(panels) == 2 * 2  # 2 columns x (header + one layer)


def test_ablation_vector_output_and_panels(tmp_path, capfd):
    _run(head_ablation, [SHAPES_IMG, DINO, DINO_PTH, '--device', 'cpu', '--format', 'pdf',
                         '--save-panels', '--out-dir', tmp_path], capfd)
    files = os.listdir(tmp_path)
    assert 'shapes_1_ablation.pdf' in files
    assert (tmp_path / 'shapes_1_ablation.pdf').read_bytes().startswith(b'%PDF')
    # all heads on, the first k off (k = 1..8) and each single head off (8)
    assert len([f for f in files if '_panel' in f and f.endswith('.pdf')]) == 1 + 8 + 8


def test_bad_format_is_one_line(tmp_path, capfd):
    with pytest.raises(SystemExit) as exc:
        cam_vis.main([SHAPES_IMG, YOLO_SHAPES, YOLO_SHAPES_PTH, '--format', 'tiff',
                      '--out-dir', str(tmp_path / 'o')])
    err = capfd.readouterr().err
    assert exc.value.code == 2 and '--format' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'o').exists()


def test_featmap_hook_pngs_have_titles(tmp_path):
    """FeatMapVisHook's PNGs carry the panel title (layer, shape, reduction) above the map."""
    from mmengine.runner import Runner

    from runner_utils import make_dataset, runner_cfg
    root, ann = make_dataset(tmp_path / 'data', num_images=1, seed=7)
    cfg = runner_cfg(osp.join(ROOT, 'configs/shapes/yolov5_n_shapes.py'), root, ann,
                     tmp_path / 'w', custom_hooks=[dict(
                         type='mmattnvis.FeatMapVisHook', target_layers=['neck'], interval=1,
                         out_dir='vis')])
    Runner.from_cfg(cfg).test()
    files = sorted(os.listdir(tmp_path / 'w' / 'vis' / 'test'))
    assert len(files) == 3
    img = cv2.imread(str(tmp_path / 'w' / 'vis' / 'test' / files[0]))
    src = cv2.imread(osp.join(root, 'images', os.listdir(osp.join(root, 'images'))[0]))
    strip = img[:img.shape[0] - src.shape[0]]
    assert img.shape[1] == src.shape[1] and 10 < strip.shape[0] < 60
    assert (strip > 250).mean() > 0.6 and (strip < 80).any()  # dark text on white
