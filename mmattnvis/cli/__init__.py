"""Command-line tools: ``mmattnvis <command>`` (see :mod:`mmattnvis.cli.main`), ``mim run mmattnvis
<tool>`` and the ``tools/*.py`` wrappers of a checkout all run the ``main`` functions here.

Importing this package silences two third-party warnings that every tool would otherwise print
before its own output (a user reads the last line first): setuptools' ``pkg_resources is
deprecated`` (raised when MMEngine / MMDet import ``pkg_resources``) and torch's ``meshgrid``
``indexing`` notice (raised by MMDet's DETR code, which means the default ``'ij'``)."""
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', message=r'torch\.meshgrid: in an upcoming release',
                        category=UserWarning)
