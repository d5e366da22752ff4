"""``python -m defectlib ...`` is the ``defectlib`` command (see :mod:`defectlib.cli`)."""
import sys

from .cli import main

sys.exit(main())
