"""``python -m defectlib.experiments.synthetic`` (also under ``torchrun``): notebook 04's training and
evaluation from the command line; see :mod:`defectlib.experiments.synthetic.main`."""
import sys

from .main import main

sys.exit(main())
