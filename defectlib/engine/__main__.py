"""``python -m defectlib.engine --selftest`` (also under ``torchrun``); see ``selftest``."""
import sys

from .selftest import main

sys.exit(main())
