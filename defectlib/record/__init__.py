"""What a notebook measured: recorded, laid out beside the paper's tables, and judged.

- :mod:`.recorder`  :class:`Recorder`: every number a notebook reports, with its dataset, unit and
                    paper key, its figures and timings, saved as ``results.json`` (no hand-written JSON)
- :mod:`.tables`    :func:`~.tables.results`: ours beside the paper's lines, one Markdown table
- :mod:`.verdict`   each paper's claim judged against the seed spread (paired t-test over seeds)

The course runner (:mod:`defectlib.course`) gathers these files into a run's report.
"""
from .recorder import LIBRARIES, Recorder, git_commit, library_versions

__all__ = ["LIBRARIES", "Recorder", "git_commit", "library_versions"]
