"""What notebook 03 reports: the models' size, cost and speed beside Table I's #Param / FLOPs / FPS;
each trained variant's scores on each test set, recorded under ``<variant>/<test set>/<metric>``
beside the paper's Table I (PA, wFm, IoU, Dice of OCINet and two rival models, paper 003 Eqs.
5-8) and Table III (IoU / Dice of the ablation rows)."""
from __future__ import annotations

from ...models.ocinet import VARIANTS
from ...record import verdict
from ...record.tables import Col, Row, results
from ...record.verdict import Claim
from .recipe import METRIC_NOTES

#: Table I's rival models (paper 003), shown beside ours
RIVALS = ("NaDiNet", "MCnet")


def record_params(rec) -> dict[str, tuple[float, float]]:
    """Every variant's parameters (M, to 0.001) beside its Table II / III #Param, counted on the
    ``meta`` device (nothing is allocated); returns variant key -> (ours, paper)."""
    import torch

    from ...models.ocinet import build_ocinet
    from ...complexity import count_parameters
    out = {}
    for key, v in VARIANTS.items():
        with torch.device("meta"):
            n = count_parameters(build_ocinet(key))
        rec.metric(f"params/{key}", round(n / 1e6, 3), paper=f"{v.paper}/params_M", dataset="-", real=False, unit="M")
        out[key] = (n / 1e6, v.params_m)
    return out


def record_runs(rec, runs: dict, data) -> None:
    """Record every variant of ``runs`` (variant key -> ``{"results": {test: scores}}``) on each of
    ``data``'s test sets, in %: IoU and Dice beside the variant's Table III row, PA and wFm beside
    Table I's OCINet (the full model only), pixel accuracy (Eq. 5, not tabulated by the paper)."""
    for key, run in runs.items():
        v = VARIANTS[key]
        for test in data.tests:
            col, res = data.columns[test], run["results"][test]
            common = dict(prefix=f"{key}/{test}", dataset=test, real=data.real, unit="%")
            rec.metrics({m: res[m] for m in ("IoU", "Dice")},
                        paper={m: f"{v.paper}/{col}/{m}" for m in ("IoU", "Dice")}, **common)
            rec.metrics({m: res[m] for m in ("PA", "wFm", "pixel_accuracy")}, note=METRIC_NOTES,
                        paper={m: f"ocinet/table1/OCINet/{col}/{m}" for m in ("PA", "wFm")}
                        if key == "full" else None, **common)


def record_curves(rec, runs: dict) -> None:
    """Each variant's learning curve, where its profile records one, as a note."""
    from .figures import curve_points
    for key, r in runs.items():
        curve = curve_points(r["history"])
        if curve:
            name, pts = curve
            rec.note(f"{VARIANTS[key].label} learning curve (step, {name}): "
                     + ", ".join(f"({s}, {v:.1f})" for s, v in pts))


def table1(rec, runs: dict, data) -> list:
    """Table I analogue, one table per test set: ours (every variant trained) against the paper's
    OCINet and rivals on the NRSD-MN column the test set stands for."""
    out = []
    for test in data.tests:
        col = data.columns[test]
        n = next(iter(runs.values()))["results"][test]["n_images"] if runs else 0
        rows = [Row(VARIANTS[key].label, ours=f"{key}/{test}",
                    paper="ocinet/table1/OCINet" if key == "full" else None) for key in runs]
        rows += [Row(name, paper=f"ocinet/table1/{name}") for name in RIVALS]
        cols = [Col("PA (authors')", "PA", f"{col}/PA"), Col("wFm", "wFm", f"{col}/wFm"),
                Col("IoU", "IoU", f"{col}/IoU"), Col("Dice", "Dice", f"{col}/Dice"),
                Col("pix. acc. (Eq. 5)", "pixel_accuracy", None)]
        out.append(results(rec, rows, cols, title=f"Table I analogue (%, per-image means): ours on "
                                                   f"{test} ({n} images), the paper on NRSD-MN {col}"))
    return out


def table3(rec, runs: dict, data):
    """Table III analogue: every ablation row's IoU / Dice in the paper, ours where trained."""
    rows = [Row(f"{v.label} ({v.params_m:.3f} M)", ours=key if key in runs else None, paper=v.paper)
            for key, v in VARIANTS.items()]
    cols = [Col(f"{m}, {test} / {data.columns[test]}", f"{test}/{m}", f"{data.columns[test]}/{m}")
            for test in data.tests for m in ("IoU", "Dice")]
    return results(rec, rows, cols, title="Table III analogue: IoU / Dice (%), ours on each test set, "
                                          "the paper on the NRSD-MN column it stands for")


#: the models of the complexity table: our name -> (metric prefix, Table I row)
COMPLEXITY = {"OCINet": ("complexity/OCINet", "ocinet/table1/OCINet"),
              "U-Net (ResNet-34)": ("complexity/U-Net-resnet34", "ocinet/table1/UNet")}


def record_complexity(rec, measured: dict, flops_size: int, throughput_size: int, device) -> float:
    """Record each model's parameters (M), GMACs at ``flops_size`` and images/s at
    ``throughput_size`` (``measured``: name of :data:`COMPLEXITY` -> ``params_m``, ``gmacs``,
    ``ips``) and OCINet's throughput over the U-Net's, which it returns. The paper's "FLOPs" are
    multiply-accumulates (its 18.82 G for OCINet at 352 px is our 18.77 GMACs)."""
    fs, ts = flops_size, throughput_size
    for name, (prefix, paper) in COMPLEXITY.items():
        m = measured[name]
        same = name == "OCINet"   # the paper's U-Net has a VGG encoder: shown beside ours, not compared
        rec.metrics({"params_M": m["params_m"]}, prefix=prefix, dataset="-", real=False, unit="M",
                    paper={"params_M": f"{paper}/params_M" if same else None})
        rec.metrics({f"GMACs@{fs}": m["gmacs"]}, prefix=prefix, dataset="-", real=False, unit="G",
                    paper={f"GMACs@{fs}": f"{paper}/FLOPs_G" if same and fs == 352 else None},
                    note="multiply-accumulates (FLOPs / 2)")
    for name, (prefix, _) in COMPLEXITY.items():
        rec.metrics({f"images_per_s@{ts}": measured[name]["ips"]}, prefix=prefix, dataset="-", real=False,
                    unit="images/s", note=f"{device}, batch 1, shared machine")
    ratio = measured["OCINet"]["ips"] / measured["U-Net (ResNet-34)"]["ips"]
    rec.metric(f"complexity/OCINet_over_UNet_throughput@{ts}", ratio, dataset="-", real=False,
               note="paper: 108 / 213 = 0.51 (RTX 3090, VGG U-Net)")
    return ratio


def complexity_table(rec, flops_size: int, throughput_size: int, device):
    """Parameters, GMACs and images/s of OCINet and a U-Net, ours beside Table I's."""
    fs, ts = flops_size, throughput_size
    rows = [Row(name, ours=prefix, paper=paper) for name, (prefix, paper) in COMPLEXITY.items()]
    cols = [Col("Params (M)", "params_M", "params_M", "{:.2f}"), Col("GMACs", f"GMACs@{fs}", "FLOPs_G", "{:.2f}"),
            Col("images/s", f"images_per_s@{ts}", "FPS", "{:.1f}")]
    return results(rec, rows, cols, title=f"Size, cost and speed: ours at {fs}x{fs} (GMACs) and {ts}x{ts} "
                                          f"(batch 1, {device}); the paper at 352x352 on an RTX 3090, its U-Net "
                                          "with a VGG encoder")


def record_summary(rec, cfg, profile: str, weights=None) -> str:
    """The run's last notes: what the profile trained (input size, steps, lr, variants, where the
    backbone started) and the verdict on the paper's claims (:func:`defectlib.record.verdict.report`; one
    run alone decides nothing), which it returns (Markdown)."""
    start = (f"backbone from the ImageNet PVT-v2-b2 weights at {weights}" if weights is not None
             else "backbone randomly initialised (no download)")
    rec.note(f"profile {profile}: input {cfg.input_size}, {cfg.max_steps or 'all'} steps of {cfg.batch_size} per "
             f"variant, lr {cfg.lr}, variants {cfg.variants}; {start}")
    claims = verdict.report("03_ocinet_nrsd", rec.data, CLAIMS)
    rec.note(claims)
    return claims


#: the paper's claims, judged by :func:`defectlib.record.verdict.judge_runs` over the seeds
CLAIMS = (
    Claim("OCINet beats its Base in IoU on the NEU-Seg test images (paper 003, Table III)",
          "full/NEU-Seg test/IoU", "base/NEU-Seg test/IoU", ("OCINet", "Base")),
)
