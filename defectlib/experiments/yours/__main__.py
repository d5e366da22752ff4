"""``python -m defectlib.experiments.yours`` (also under ``torchrun``): notebook 05's steps on your
folder from the command line; see :mod:`defectlib.experiments.yours.main`."""
import sys

from .main import main

sys.exit(main())
