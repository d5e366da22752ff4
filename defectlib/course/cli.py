"""The ``defectlib`` command: ``run`` the notebooks, ``report`` on a run, ``seeds`` to commit them,
``doctor``, ``data`` tools, ``papers``, ``predict`` with a model notebook 05 exported.

    defectlib run --profile smoke              # every notebook, smoke profile (what `make run` does)
    defectlib run --only 01 --profile cpu      # one notebook, the reduced real experiment
    defectlib doctor                           # first thing on a new GPU kernel: will the paper runs fit and feed it?
    defectlib report latest --against runs/OLD # what changed between two runs
    defectlib seeds runs/A runs/B runs/C       # commit one notebook's seeds as results/NN_<name>/
    defectlib data --help                      # dataset tools (defectlib.course.data_cli)
    defectlib papers danet/table3/phase5       # the papers' own numbers, as recorded in defectlib
    defectlib predict MODEL IMAGES --out DIR   # masks + overlays by a model notebook 05 exported
"""
from __future__ import annotations

import argparse
import sys


def _papers(argv: list[str]) -> int:
    from .. import papers
    p = argparse.ArgumentParser(prog="defectlib papers",
                                description="List the papers' numbers whose key starts with PREFIX.")
    p.add_argument("prefix", nargs="?", default="")
    args = p.parse_args(argv)
    found = papers.keys(args.prefix)
    if not found:
        print(f"no paper numbers under {args.prefix!r}; top level: "
              f"{sorted({k.split('/')[0] for k in papers.TABLES})}", file=sys.stderr)
        return 1
    for key in found:
        print(f"{key:55s} {papers.describe(key)}")
    return 0


def _data(argv: list[str]) -> int:
    from .data_cli import main as data_main
    return data_main(argv) or 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"run": "run the notebooks through papermill into a new runs/ folder",
                "doctor": "a few training steps of every notebook's models: speed, memory, loader",
                "report": "rebuild a run's report.md, optionally --against another run",
                "seeds": "gather the runs of several seeds into results/NN_<name>/ (results.json, seeds.json)",
                "data": "dataset tools (locate, check, stand-ins)",
                "papers": "list the papers' own numbers by key prefix",
                "predict": "masks and overlays of new images by a model notebook 05 exported"}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(__doc__.strip() + "\n\ncommands:\n" +
              "\n".join(f"  {k:8s} {v}" for k, v in commands.items()))
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        from .run import main as run_main
        return run_main(rest)
    if cmd == "doctor":
        from .doctor import main as doctor_main
        return doctor_main(rest)
    if cmd == "report":
        from .report import main as report_main
        return report_main(rest)
    if cmd == "seeds":
        from .seeds import main as seeds_main
        return seeds_main(rest)
    if cmd == "data":
        return _data(rest)
    if cmd == "predict":
        from .predict import main as predict_main
        return predict_main(rest)
    return _papers(rest)


if __name__ == "__main__":
    sys.exit(main())
