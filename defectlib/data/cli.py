"""``defectlib data ...``: check, fetch, make-standins, list (``defectlib.cli`` delegates here).

    defectlib data list
    defectlib data locate NAME [--data-root DIR]
    defectlib data check PATH [--kind neu-det|neu-seg|mtd|severstal|nrsd-mn|folder] [--no-duplicates]
                              [--against OTHER_PATH]
    defectlib data fetch NAME --data-root DIR [--allow-unverified]
    defectlib data make-standins [--dest DIR] [NAME ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="defectlib data", description="Datasets: check, fetch, stand-ins.")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="datasets the course knows, with source and licence")
    lo = sub.add_parser("locate", help="print the folder a notebook would use (real data or stand-in)")
    lo.add_argument("name")
    lo.add_argument("--data-root", default=None)
    c = sub.add_parser("check", help="validate a dataset folder and find (near-)duplicates")
    c.add_argument("path", nargs="+")
    c.add_argument("--kind", default=None, help="dataset format (default: detected)")
    c.add_argument("--no-duplicates", action="store_true", help="skip the duplicate search")
    c.add_argument("--mad-threshold", type=float, default=2.9)
    c.add_argument("--max-hamming", type=int, default=22)
    c.add_argument("--against", default=None, help="also report duplicates shared with this dataset folder")
    f = sub.add_parser("fetch", help="download + verify + unpack a dataset with a public direct download")
    f.add_argument("name")
    f.add_argument("--data-root", default=None, help="default: $DEFECTLIB_DATA")
    f.add_argument("--allow-unverified", action="store_true")
    m = sub.add_parser("make-standins", help="write the generated stand-ins (default: into data/standins)")
    m.add_argument("names", nargs="*")
    m.add_argument("--dest", default=None)
    m.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "list":
        from .registry import REGISTRY
        for d in REGISTRY.values():
            print(f"{d.name:10s} {d.title}\n{'':10s} source:  {d.url}\n{'':10s} cite:    {d.citation}\n"
                  f"{'':10s} licence: {d.license}\n{'':10s} layout:  {d.layout}\n")
        return 0
    if args.cmd == "locate":
        from .resolve import locate
        path, real = locate(args.name, args.data_root)
        print(f"{path}  ({'real data' if real else 'generated stand-in'})")
        return 0
    if args.cmd == "check":
        from .check import check_dataset
        bad = 0
        for path in args.path:
            t = time.time()
            report = check_dataset(path, kind=args.kind, duplicates=not args.no_duplicates,
                                   mad_threshold=args.mad_threshold, max_hamming=args.max_hamming,
                                   progress=sys.stderr.isatty(), against=args.against)
            print(report)
            print(f"({time.time() - t:.1f} s)\n")
            bad += not report.ok
        return 1 if bad else 0
    if args.cmd == "fetch":
        from defectlib.paths import real_data_root
        from .registry import fetch
        root = real_data_root(args.data_root)
        if root is None:
            print("give --data-root DIR or set DEFECTLIB_DATA", file=sys.stderr)
            return 2
        try:
            print(fetch(args.name, root, allow_unverified=args.allow_unverified))
        except Exception as exc:  # user-facing command: one readable line
            print(f"fetch failed: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "make-standins":
        from defectlib.synth.writers import STANDINS, write_standin
        from .resolve import standin_dir
        names = args.names or list(STANDINS)
        for name in names:
            t = time.time()
            dest = Path(args.dest) / name if args.dest else standin_dir(name)
            kwargs = {"seed": args.seed} if args.seed else {}
            write_standin(name, dest, **kwargs)
            info_file = dest / "STANDIN.json"  # record the arguments so locate() reuses this copy
            info_file.write_text(json.dumps(json.loads(info_file.read_text()) | {"kwargs": kwargs}, indent=1))
            print(f"{name:10s} -> {dest}  ({time.time() - t:.1f} s)")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
