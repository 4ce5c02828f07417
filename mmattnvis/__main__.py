"""``python -m mmattnvis <command>``, the same as the ``mmattnvis`` console script."""
import sys

from mmattnvis.cli.main import main

sys.exit(main())
