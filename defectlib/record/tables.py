"""A notebook's results beside the paper's: the one renderer every notebook's results table uses.

A notebook records its numbers with :meth:`defectlib.record.Recorder.metric` (or ``metrics`` for a
group). :func:`results` then lays the recorded values out as a Markdown table, each row of ours
beside the paper's row from :mod:`defectlib.papers`, with the same look in every notebook
(JupyterLab renders Markdown and reflows it to the window, where fixed-width ``print`` columns
wrap)::

    rows = [Row("phase 2", ours="phase2", paper="danet/table3/phase2"), ...]
    cols = [Col("crazing", ours="AP50/crazing", paper="crazing"), Col("mAP@0.5", "mAP50", "mAP")]
    display(tables.results(rec, rows, cols, title="Table 3 analogue (AP50, %)"))

Cell ``(row, col)`` of *ours* is the recorded metric ``<row.ours>/<col.ours>``; of the *paper* it
is ``papers.lookup("<row.paper>/<col.paper>")``. A row without ``ours`` (a model this profile does
not train) shows only the paper's line, one without ``paper`` only ours. Without rows and columns,
:func:`results` lists every recorded metric with the paper's number beside it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .. import papers
from ..viz import markdown_table


@dataclass(frozen=True)
class Row:
    """One model / setting of the table: ``ours`` prefixes the recorded metric names, ``paper``
    the keys of :data:`defectlib.papers.TABLES` (None: no such line)."""
    label: str
    ours: str | None = None
    paper: str | None = None


@dataclass(frozen=True)
class Col:
    """One metric: ``ours`` ends the recorded names, ``paper`` the paper's keys (None: the paper
    has no such number), ``fmt`` formats both."""
    label: str
    ours: str
    paper: str | None = None
    fmt: str = "{:.1f}"


class Table(str):
    """Markdown text that renders as a table where IPython displays it (``display(table)`` or a
    cell's last expression) and prints as its Markdown source elsewhere."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _values(recorded) -> dict[str, dict]:
    """name -> metric entry, from a Recorder, its ``data`` or a ``results.json`` dict."""
    data = getattr(recorded, "data", recorded)
    return {m["name"]: m for m in data["metrics"]}


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value) if isinstance(value, (int, float)) else str(value)


def _join(prefix: str | None, suffix: str | None) -> str | None:
    if prefix is None or suffix is None:
        return None
    return f"{prefix}/{suffix}" if prefix and suffix else (prefix or suffix)


def results(recorded, rows: Sequence[Row] | None = None, cols: Sequence[Col] | None = None, *,
            title: str = "", ours: str | None = None) -> Table:
    """The results table (see the module docstring). ``recorded``: a Recorder, its ``data`` or a
    ``results.json`` dict. ``ours`` labels our lines (default ``"ours (<profile>)"``). A row
    whose ``ours`` prefix matches no recorded metric of the table reads ``not run``; a ``paper``
    key the papers do not have is a KeyError (a typo must not print ``-``)."""
    metrics = _values(recorded)
    if rows is None and cols is None:
        return _listing(metrics, title)
    if not rows or not cols:
        raise ValueError("give both rows and cols, or neither (then every recorded metric is listed)")
    profile = getattr(recorded, "data", recorded).get("profile")
    ours = ours or (f"ours ({profile})" if profile else "ours")
    out = []
    for row in rows:
        if row.paper is not None:
            out.append([row.label, "paper", *(_cell(papers.lookup(_join(row.paper, c.paper))
                                                    if c.paper is not None else None, c.fmt)
                                              for c in cols)])
        if row.ours is not None:
            found = [metrics.get(_join(row.ours, c.ours)) for c in cols]
            cells = ([_cell(m["value"] if m else None, c.fmt) for m, c in zip(found, cols)]
                     if any(found) else ["not run"] + [""] * (len(cols) - 1))
            out.append([row.label, ours, *cells])
    table = markdown_table(["", "source", *(c.label for c in cols)], out,
                           numeric=[False, False] + [True] * len(cols))
    return Table(f"**{title}**\n\n{table}" if title else table)


def _listing(metrics: Mapping[str, dict], title: str) -> Table:
    """Every recorded metric: name, ours, the paper's number (where it names one), dataset."""
    out = []
    for name, m in metrics.items():
        ref = papers.get(m["paper"]) if m.get("paper") else None
        unit = f" {m['unit']}" if m.get("unit") and m["unit"] != "%" else ""
        out.append([name, _cell(m["value"], "{:.3f}") + unit, "" if ref is None else str(ref),
                    m["dataset"] + ("" if m["real"] else " (stand-in)")])
    table = markdown_table(["metric", "ours", "paper", "dataset"], out, numeric=[False, True, True, False])
    return Table(f"**{title}**\n\n{table}" if title else table)
