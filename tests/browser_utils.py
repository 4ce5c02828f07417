"""Headless Chromium (Debian's, driven by Playwright) for the report tests.

Skipped with the reason when Playwright or the browser is missing (``make test`` installs
Chromium with apt-get when it runs as root; Playwright comes with the ``tests`` extra).
"""
import os
import os.path as osp
from typing import Iterator

import pytest

CHROMIUM = os.environ.get('MMATTNVIS_CHROMIUM', '/usr/bin/chromium')  # another build: set it


def launch_browser() -> Iterator:
    """Yield a launched browser (a generator for module-scoped fixtures); skips when absent."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip('playwright is not installed (pip install "mmattnvis[tests]")')
    if not osp.isfile(CHROMIUM):
        pytest.skip(f'{CHROMIUM} is missing (apt-get install chromium; make test installs it '
                    'when run as root)')
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--headless', '--no-sandbox'])
        yield b
        b.close()


class Page:
    """A page with its console errors, failed requests and uncaught exceptions collected."""

    def __init__(self, browser, url: str, width: int = 1280, height: int = 900):
        self.context = browser.new_context(viewport={'width': width, 'height': height})
        self.page = self.context.new_page()
        self.errors = []
        self.page.on('console', lambda m: self.errors.append(m.text) if m.type == 'error' else 0)
        self.page.on('pageerror', lambda e: self.errors.append(f'uncaught: {e}'))
        self.page.on('requestfailed', lambda r: self.errors.append(f'failed: {r.url}'))
        self.page.goto(url)
        self.page.wait_for_selector('html[data-ready="1"]')

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def open_image(self, i: int):
        self.js('i => { location.hash = "#i=" + i; }', i)
        self.page.wait_for_function(
            'i => window.MMATTNVIS.state.current && window.MMATTNVIS.state.current.index === i',
            arg=i)

    def click_image(self, x: float, y: float, width: int, height: int) -> None:
        """Click the main image at original-image pixel ``(x, y)`` of a ``width x height``
        image."""
        box = self.page.locator('#d-body .stage.main').bounding_box()
        self.page.mouse.click(box['x'] + x / width * box['width'],
                              box['y'] + y / height * box['height'])

    def inked_pixels(self, selector: str) -> int:
        """Pixels of the canvas at ``selector`` that are not transparent."""
        return self.js('s => { const c = document.querySelector(s); const d = c.getContext("2d")'
                       '.getImageData(0, 0, c.width, c.height).data; let n = 0; '
                       'for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }',
                       selector)

    def close(self) -> None:
        self.context.close()
