"""The one input conversion every metric applies: torch tensors or array-likes to numpy arrays."""
from __future__ import annotations

import numpy as np


def to_numpy(x, dtype=None, shape=None) -> np.ndarray:
    """``x`` as a numpy array (a torch tensor is detached and copied to the CPU first), cast to
    ``dtype`` if given (without a copy when it already has it) and reshaped to ``shape`` if given."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x) if dtype is None else np.asarray(x).astype(dtype, copy=False)
    return a if shape is None else a.reshape(shape)
