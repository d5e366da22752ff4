"""``defectlib data ...``: check, fetch, make-standins, list (``defectlib.course.cli`` delegates here).

    defectlib data list
    defectlib data locate NAME [--data-root DIR]
    defectlib data check PATH [--kind neu-det|neu-seg|mtd|severstal|nrsd-mn|folder] [--no-duplicates]
                              [--against OTHER_PATH]
                              [--images DIR] [--masks DIR] [--mask-suffix _GT] [--mask-ext .png]
                              [--allow-missing-masks] [--threshold T | --encoding auto|binary|index]
                              [--colors "255,0,0=1;0,255,0=2"] [--mat-key groundTruth.Segmentation]
                              [--defect-labels 2,3] [--bit-depth 12]
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
    g = c.add_argument_group("generic folders (the options of defectlib.data.ImageMaskFolder; any of "
                             "them means --kind folder)")
    g.add_argument("--images", metavar="DIR", help="image sub-folder ('.' = the folder itself; default images)")
    g.add_argument("--masks", metavar="DIR", help="mask sub-folder ('.' = the folder itself; default masks)")
    g.add_argument("--mask-suffix", metavar="S", help="masks are <stem><S>.* (KSDD2: _GT)")
    g.add_argument("--mask-ext", metavar="EXT", help="only masks with this extension (.png)")
    g.add_argument("--allow-missing-masks", action="store_true", help="an image without a mask is clean (DAGM)")
    g.add_argument("--threshold", type=float, metavar="T", help="a mask pixel is a defect when its grey level > T")
    g.add_argument("--encoding", choices=("auto", "binary", "index"), help="mask encoding (see data/README.md)")
    g.add_argument("--colors", metavar="R,G,B=K;...", help="colour masks: RGB colour -> class index")
    g.add_argument("--mat-key", metavar="NAME", help=".mat masks: the variable (or struct.field) holding the mask")
    g.add_argument("--defect-labels", metavar="V,V", help="label images: the stored values that are defects "
                                                           "(all others are background), e.g. 2 or 2,3")
    c.add_argument("--bit-depth", type=int, metavar="B", help="images stored with B bits in 16-bit files (10, 12)")
    f = sub.add_parser("fetch", help="download + verify + unpack a dataset with a public direct download")
    f.add_argument("name")
    f.add_argument("--data-root", default=None, help="default: $DEFECTLIB_DATA")
    f.add_argument("--allow-unverified", action="store_true")
    m = sub.add_parser("make-standins", help="write the generated stand-ins (default: into data/standins)")
    m.add_argument("names", nargs="*")
    m.add_argument("--dest", default=None)
    m.add_argument("--seed", type=int, default=0)
    return p


def parse_colors(text: str) -> dict:
    """``"255,0,0=1;0,255,0=2"`` -> ``{(255, 0, 0): 1, (0, 255, 0): 2}``."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            rgb, k = part.split("=")
            r, g, b = (int(v) for v in rgb.split(","))
            out[(r, g, b)] = int(k)
        except ValueError:
            raise ValueError(f"--colors takes 'R,G,B=K;R,G,B=K', got {part!r}") from None
    if not out:
        raise ValueError(f"--colors takes 'R,G,B=K;R,G,B=K', got {text!r}")
    return out


def check_options(args) -> tuple[object, dict]:
    """(MaskRule or None, ImageMaskFolder layout options) from the ``data check`` arguments."""
    from ..data.masks import MaskRule
    layout = {}
    for name in ("images", "masks"):
        value = getattr(args, name)
        if value is not None:
            layout[name] = None if value in (".", "") else value
    if args.mask_suffix is not None:
        layout["mask_suffix"] = args.mask_suffix
    if args.mask_ext is not None:
        layout["mask_ext"] = args.mask_ext if args.mask_ext.startswith(".") else f".{args.mask_ext}"
    if args.allow_missing_masks:
        layout["allow_missing_masks"] = True
    rule = None
    labels = getattr(args, "defect_labels", None)
    if any(v is not None for v in (args.threshold, args.encoding, args.colors, args.mat_key, labels)):
        if labels is not None:
            try:
                labels = [float(v) if "." in v else int(v) for v in labels.replace(";", ",").split(",") if v.strip()]
            except ValueError:
                raise ValueError(f"--defect-labels takes values like 2 or 2,3; got {args.defect_labels!r}") from None
        rule = MaskRule(args.encoding or "auto", args.threshold,
                        parse_colors(args.colors) if args.colors else None, args.mat_key, defect_labels=labels)
    return rule, layout


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "list":
        from ..data.registry import REGISTRY
        for d in REGISTRY.values():
            print(f"{d.name:10s} {d.title}\n{'':10s} source:  {d.url}\n{'':10s} cite:    {d.citation}\n"
                  f"{'':10s} licence: {d.license}\n{'':10s} layout:  {d.layout}\n")
        return 0
    if args.cmd == "locate":
        from ..data.errors import DatasetError
        from ..synth.standins import locate
        try:
            path, real = locate(args.name, args.data_root)
        except DatasetError as exc:
            print(f"defectlib data locate: {exc}", file=sys.stderr)
            return 2
        print(f"{path}  ({'real data' if real else 'generated stand-in'})")
        return 0
    if args.cmd == "check":
        from ..data.check import check_dataset
        try:
            rule, layout = check_options(args)
            if (rule is not None or layout) and args.kind not in (None, "folder"):
                raise ValueError(f"--kind {args.kind} has its own layout and mask rule; the folder "
                                 "options apply to --kind folder")
        except ValueError as exc:
            parser.error(str(exc))
        bad = 0
        for path in args.path:
            t = time.time()
            report = check_dataset(path, kind=args.kind, duplicates=not args.no_duplicates,
                                   mad_threshold=args.mad_threshold, max_hamming=args.max_hamming,
                                   progress=sys.stderr.isatty(), against=args.against, rule=rule,
                                   bit_depth=args.bit_depth, **layout)
            print(report)
            print(f"({time.time() - t:.1f} s)\n")
            bad += not report.ok
        return 1 if bad else 0
    if args.cmd == "fetch":
        from defectlib.paths import real_data_root
        from ..data.registry import fetch
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
        from ..synth.standins import standin_dir
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
