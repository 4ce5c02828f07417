"""Command-line tools: ``mmattnvis <command>`` (see :mod:`mmattnvis.cli.main`), ``mim run mmattnvis
<tool>`` and the ``tools/*.py`` wrappers of a checkout all run the ``main`` functions here."""
