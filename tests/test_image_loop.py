"""The one image loop of the image tools (``mmattnvis.apis.image_loop``), through a real CLI."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np

from mmattnvis.apis.image_loop import ImageLoop
from mmattnvis.cli import cam_vis

from conftest import ROOT

DEMO_IMAGES = osp.join(ROOT, 'demo', 'images')


def _corrupt_jpeg() -> bytes:
    """A JPEG whose header is valid but whose image data is cut short and garbled."""
    ok, buf = cv2.imencode('.jpg', np.full((48, 48, 3), 90, np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    return bytes(data[:len(data) // 2]) + b'\x00' * 8


def test_cam_vis_skips_an_unreadable_image_and_writes_the_rest(tmp_path, capfd):
    images = tmp_path / 'images'
    shutil.copytree(DEMO_IMAGES, images)
    good = sorted(osp.splitext(n)[0] for n in os.listdir(images))
    (images / 'broken.jpg').write_bytes(_corrupt_jpeg())
    out, results = tmp_path / 'out', tmp_path / 'results'
    rc = cam_vis.main([str(images), 'mmattnvis::shapes/yolov5_n_shapes.py',
                       'mmattnvis::shapes/yolov5_n_shapes.pth', '--method', 'gradcam',
                       '--topk', '1', '--cell-width', '64', '--device', 'cpu',
                       '--out-dir', str(out), '--save-results', str(results)])
    stdout, stderr = capfd.readouterr()
    assert rc == 0, stderr[-2000:]
    assert 'Traceback' not in stderr
    # every readable image has its figure, the broken one none
    written = sorted(os.listdir(out))
    assert written == [f'{s}.png' for s in good], written
    for name in written:
        assert cv2.imread(str(out / name)) is not None
    assert f'\n{len(good)} figure(s) written to {osp.abspath(out)}' in stdout
    # the broken image is named once, at the end, on stderr
    warnings = [x for x in stderr.splitlines() if x.startswith('warning: skipped')]
    assert len(warnings) == 1, stderr[-2000:]
    assert f'skipped 1 of {len(good) + 1} image(s)' in warnings[0]
    assert 'broken.jpg' in warnings[0]
    # the sinks were closed: the index lists the records and the skipped image
    with open(results / 'index.json') as f:
        index = json.load(f)
    assert sorted(index['records']) == good
    assert [osp.basename(s['path']) for s in index['skipped']] == ['broken.jpg']
    assert index['skipped'][0]['reason']


def test_progress_steps_never_overrun(tmp_path, capfd):
    """A records function that reports more steps than an image has (e.g. ``--method auto``
    expanding to several methods) cannot push the bar past its total; one that reports none
    still completes it."""
    paths = []
    for i in range(3):
        p = str(tmp_path / f'img{i}.png')
        cv2.imwrite(p, np.full((8, 8, 3), 40 * i, np.uint8))
        paths.append(p)

    class Record:
        pass

    for per_call in (0, 5):
        loop = ImageLoop(paths, str(tmp_path), steps=2, batch_size=1)

        def records(imgs, names, per_call=per_call):
            loop.step(per_call)
            return [Record() for _ in imgs]

        seen = []
        loop.run(records, after=lambda path, _: seen.append(loop._progress.completed))
        assert seen == [2, 4, 6], per_call
    capfd.readouterr()
