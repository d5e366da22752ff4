"""How the course's reports write numbers: with their unit and precision (two decimals for %, else
four significant digits), differences with a sign, and which dataset produced each metric.
Shared by :mod:`.report` and :mod:`.reproduce`."""
from __future__ import annotations

import json
import math


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return json.dumps(value) if not isinstance(value, str) else value
    if isinstance(value, int):
        text = str(value)
    elif unit == "%":
        text = f"{value:.2f}"
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}" if unit else text


def bare(v, unit="") -> str:
    """A number without its unit, with the precision of ``unit``: ``1.25`` (two decimals for %,
    else 4 significant)."""
    return fmt(v, "%" if unit == "%" else "").removesuffix(" %")


def signed(v, unit="") -> str:
    """A difference without its unit: ``+1.25``."""
    if v is None:
        return "-"
    return ("+" if v >= 0 else "") + bare(v, unit)


def dataset_label(m: dict) -> str:
    """``NEU-DET (real)`` / ``NRSD-MN (stand-in)``; ``-`` for numbers no dataset produced
    (parameter counts, say), recorded with ``dataset="-"``."""
    if m.get("dataset") in (None, "", "-"):
        return "-"
    return f"{m['dataset']} ({'real' if m.get('real') else 'stand-in'})"
