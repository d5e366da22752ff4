"""The progress bar: tqdm's widget bar in a Jupyter(Lab) kernel when ipywidgets is installed, its
text bar everywhere else, and the text bar in batch runs (``DEFECTLIB_BATCH=1``, set by
``defectlib run`` for papermill: an executed notebook keeps a text line, where a widget would be
saved as an empty placeholder).

Not ``tqdm.auto``: its class mixes in ``tqdm.asyncio``, whose constructor calls ``iter()`` on the
iterable it wraps. Over a DataLoader that is an extra iterator per epoch - worker processes started
for nothing, and a base seed drawn from the global RNG (or the loader's generator) - so a notebook
run interactively in JupyterLab would draw other random numbers than the same notebook run by
papermill, and train to other numbers. Both bars chosen here wrap the iterable lazily.
"""
from __future__ import annotations

import importlib.util
import os
import sys


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, VS Code notebooks), False in a terminal or IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


# without ipywidgets, tqdm.notebook would warn "IProgress not found" and fall back: do it silently
if (os.environ.get("DEFECTLIB_BATCH") != "1" and _in_kernel()
        and importlib.util.find_spec("ipywidgets") is not None):
    from tqdm.notebook import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["tqdm"]
