"""The one loop over image files that every image tool runs (feature maps, attention, CAM,
head ablation).

Each image is read (an unreadable one is skipped, named at the end), its records computed by
the task's :class:`~mmattnvis.apis.run.Run`, drawn and written, and given to the run's sinks
(saved results, report); a progress bar counts the steps. :meth:`ImageLoop.finish` closes the
sinks and prints the last line (and the skipped images), or raises when none could be read.
"""
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from ..structures import ResultRecord
from .inference import UnreadableImages, batched
from .records import record_stem
from .run_sinks import RunSinks

#: ``records(images_bgr, paths)``: one result record per image (usually ``Run.run_images``).
RecordsFn = Callable[[List[np.ndarray], List[str]], List[ResultRecord]]
#: ``draw(path, image_bgr, record)``: writes the image's figure(s); the written path or ``None``.
DrawFn = Callable[[str, np.ndarray, ResultRecord], Optional[str]]
#: ``after(path, record)``: called once an image is done (progress advanced), e.g. to print.
AfterFn = Callable[[str, ResultRecord], None]


class ImageLoop:
    """Run a task over image files, one record per image.

    Args:
        images: The image paths (see :func:`~mmattnvis.apis.collect_images`).
        root: The folder the images' record stems are relative to (``None``: base names).
        sinks: Where every record also goes (saved results, report); ``None``: nowhere.
        steps: Progress steps per image (e.g. one per method); ``records`` may advance them
            with :meth:`step` as it goes, the rest are counted when the image is done.
        batch_size: Images per call of ``records``.
    """

    def __init__(self, images: Sequence[str], root: Optional[str], sinks: Optional[RunSinks] = None,
                 steps: int = 1, batch_size: int = 1) -> None:
        self.images = list(images)
        self.root = root
        self.sinks = sinks
        self.steps = max(1, int(steps))
        self.batch_size = max(1, int(batch_size))
        self.unreadable = UnreadableImages()
        self.written: List[str] = []
        self._progress: Optional[Any] = None
        self._budget = 0  # steps of the images read but not done yet
        self._stepped = 0  # of which ``step`` took these

    def step(self, n: int = 1) -> None:
        """Advance the progress bar while records are computed (e.g. ``on_method``); never
        past the steps of the images being processed."""
        n = min(int(n), self._budget - self._stepped)
        if self._progress is not None and n > 0:
            self._stepped += n
            self._progress.update(n)

    def _image_done(self) -> None:
        take = min(self._stepped, self.steps)
        self._stepped -= take
        self._budget -= self.steps
        if self._progress is not None and self.steps > take:
            self._progress.update(self.steps - take)

    def run(self, records: RecordsFn, draw: Optional[DrawFn] = None,
            after: Optional[AfterFn] = None) -> List[str]:
        """Every image: read it, ``records`` -> ``draw`` -> the sinks -> progress -> ``after``.

        Returns:
            The paths ``draw`` wrote (also in :attr:`written`).
        """
        from ..utils.cli import ProgressBar
        progress = self._progress = ProgressBar(len(self.images) * self.steps)
        for _, chunk in batched(self.images, self.batch_size):
            loaded = [(p, self.unreadable.load(p)) for p in chunk]
            for _ in range(sum(img is None for _, img in loaded)):  # skipped, named at the end
                progress.update(self.steps)
            paths = [p for p, img in loaded if img is not None]
            images = [img for _, img in loaded if img is not None]
            if not images:
                continue
            self._budget, self._stepped = len(images) * self.steps, 0
            for path, image, record in zip(paths, images, records(images, paths)):
                out = draw(path, image, record) if draw is not None else None
                if out is not None:
                    self.written.append(out)
                if self.sinks is not None:
                    self.sinks.add(record, record_stem(path, self.root))
                self._image_done()
                if after is not None:
                    after(path, record)
        return self.written

    def finish(self, message: Optional[Callable[[int], str]] = None) -> Optional[str]:
        """End the run: note the skipped images in the sinks, close them (write the index, build
        the report), then print ``message(len(written))`` (``; report: ...`` appended when one
        was built) and the skipped images.

        Returns:
            The report's ``index.html`` or ``None``.

        Raises:
            UserInputError: No image could be read.
        """
        report = None
        if self.sinks is not None:
            self.sinks.skipped(self.unreadable)
            report = self.sinks.close()
        done = None
        if message is not None:
            done = message(len(self.written)) + (f'; report: {report}' if report else '')
        self.unreadable.finish(len(self.images), done)
        return report


def run_image_loop(images: Sequence[str], root: Optional[str], records: RecordsFn,
                   draw: Optional[DrawFn] = None, sinks: Optional[RunSinks] = None,
                   message: Optional[Callable[[int], str]] = None, steps: int = 1,
                   batch_size: int = 1, after: Optional[AfterFn] = None) -> ImageLoop:
    """:class:`ImageLoop` over ``images`` from start to finish (see :meth:`ImageLoop.run` and
    :meth:`ImageLoop.finish`); returns the finished loop."""
    loop = ImageLoop(images, root, sinks, steps, batch_size)
    loop.run(records, draw, after)
    loop.finish(message)
    return loop
