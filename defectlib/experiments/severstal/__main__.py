"""``python -m defectlib.experiments.severstal`` (also under ``torchrun``): notebook 02's training and
evaluation from the command line; see :mod:`defectlib.experiments.severstal.main`."""
import sys

from .main import main

sys.exit(main())
