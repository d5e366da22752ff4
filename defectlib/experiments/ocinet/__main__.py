"""``python -m defectlib.experiments.ocinet`` (also under ``torchrun``): notebook 03's training and
evaluation from the command line; see :mod:`defectlib.experiments.ocinet.main`."""
import sys

from .main import main

sys.exit(main())
