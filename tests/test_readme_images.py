"""scripts/make_readme_images.py: its report part run as the script runs it, and the screenshot
it takes shows what the README promises (maps, the clicked detection's points, no absolute path,
no raw JSON dump)."""
import importlib.util
import os.path as osp
import re

import pytest
from browser_utils import CHROMIUM

from conftest import ROOT

SCRIPT = osp.join(ROOT, 'scripts', 'make_readme_images.py')


def _script():
    spec = importlib.util.spec_from_file_location('make_readme_images', SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_report_screenshot_shows_points_and_no_absolute_path(tmp_path, monkeypatch):
    pytest.importorskip('playwright', reason='playwright is not installed')
    if not osp.isfile(CHROMIUM):
        pytest.skip(f'{CHROMIUM} is missing')
    mod = _script()
    monkeypatch.chdir(ROOT)  # the script runs from the repository root, with relative paths
    work = osp.relpath(str(tmp_path), ROOT)
    shown = mod.screenshot_report(mod.report_run(work), str(tmp_path / 'report.png'),
                                  chromium=CHROMIUM)
    assert shown['maps'] > 0 and f"Maps ({shown['maps']})" in shown['text']
    assert shown['points'] == 64  # DINO slim: 8 heads x 2 levels x 4 points
    assert 'dino_slim_shapes' in shown['title'] and '.mmattnvis' not in shown['title']
    text = shown['text']
    assert ROOT not in text and str(tmp_path) not in text
    assert not re.search(r'(^|\s)/(work|tmp|home|root)/', text), text
    assert '"image_path"' not in text and '[[' not in text  # no raw record dump
    import cv2
    png = cv2.imread(str(tmp_path / 'report.png'))
    assert png.shape == (720, 1280, 3)

