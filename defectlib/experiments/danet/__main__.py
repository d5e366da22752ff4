"""``python -m defectlib.experiments.danet`` (also under ``torchrun``): notebook 01's training and
evaluation from the command line; see :mod:`defectlib.experiments.danet.main`."""
import sys

from .main import main

sys.exit(main())
