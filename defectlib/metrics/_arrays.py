"""The input conversion and checks every metric applies: torch tensors or array-likes to numpy
arrays, and a ValueError naming the argument and the offending value for anything a metric would
otherwise turn into a number silently (NaN, inf, a probability outside [0, 1], a 0..255 mask
where 0/1 is meant, a fractional or out-of-range label, a shape that only reshapes by accident).
"""
from __future__ import annotations

import numpy as np


def to_numpy(x, dtype=None, shape=None) -> np.ndarray:
    """``x`` as a numpy array (a torch tensor is detached and copied to the CPU first), cast to
    ``dtype`` if given (without a copy when it already has it) and reshaped to ``shape`` if given."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x) if dtype is None else np.asarray(x).astype(dtype, copy=False)
    return a if shape is None else a.reshape(shape)


def _first_bad(a: np.ndarray, bad: np.ndarray) -> str:
    idx = tuple(int(i) for i in np.argwhere(bad)[0]) if a.ndim else ()
    value = a[idx] if a.ndim else a
    return f"{value.item() if hasattr(value, 'item') else value} at index {list(idx)}"


def numeric(x, name: str) -> np.ndarray:
    """``x`` as a numeric (bool, int or float) numpy array; ValueError naming ``name`` otherwise."""
    a = to_numpy(x)
    if not (a.dtype == bool or np.issubdtype(a.dtype, np.number)):
        raise ValueError(f"{name}: expected numbers, got an array of {a.dtype}")
    return a


def finite(x, name: str, dtype=np.float64) -> np.ndarray:
    """``x`` as a float array with no NaN or infinity; ValueError naming ``name`` and the value."""
    a = numeric(x, name).astype(dtype, copy=False)
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name}: holds {int(bad.sum())} non-finite value(s), first {_first_bad(a, bad)}")
    return a


def probabilities(x, name: str, dtype=np.float64) -> np.ndarray:
    """``x`` as finite floats in [0, 1] (apply a sigmoid to logits first)."""
    a = finite(x, name, dtype)
    bad = (a < 0) | (a > 1)
    if bad.any():
        raise ValueError(f"{name}: expected probabilities in [0, 1], found {_first_bad(a, bad)} "
                         f"(range [{a.min():.4g}, {a.max():.4g}]; apply a sigmoid to logits first)")
    return a


def binary(x, name: str) -> np.ndarray:
    """``x`` as a bool array; only bool or the values 0 and 1 are accepted (a 0/255 mask, a
    probability map or a negative map is a ValueError naming ``name`` and the value)."""
    a = numeric(x, name)
    if a.dtype == bool:
        return a
    bad = (a != 0) & (a != 1)
    if bad.any():
        hint = (" (a 0/255 mask: pass mask > 127)" if np.isin(a[bad], (255,)).all()
                else " (probabilities: binarise first, e.g. > 0.5 or otsu_binarize)")
        raise ValueError(f"{name}: expected a binary mask of 0/1 or bool, found {_first_bad(a, bad)}{hint}")
    return a != 0


def labels(x, name: str, low: int = 0, high: int | None = None) -> np.ndarray:
    """``x`` as int64 class labels in ``[low, high)`` (``high`` None: no upper bound). Integral
    floats are accepted; a fractional, non-finite or out-of-range label is a ValueError."""
    a = numeric(x, name)
    if not (a.dtype == bool or np.issubdtype(a.dtype, np.integer)):
        f = finite(a, name)
        frac = f != np.round(f)
        if frac.any():
            raise ValueError(f"{name}: labels must be whole numbers, found {_first_bad(f, frac)}")
    a = a.astype(np.int64)
    bad = (a < low) | ((a >= high) if high is not None else False)
    if np.any(bad):
        rng = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name}: labels must lie in {rng}, found {_first_bad(a, np.asarray(bad))}")
    return a
