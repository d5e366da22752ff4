"""``python -m defectlib ...`` is the ``defectlib`` command (see :mod:`defectlib.course.cli`)."""
import sys

from .course.cli import main

sys.exit(main())
