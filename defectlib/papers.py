"""The four papers' own numbers, as data, so every report puts our result beside theirs.

Each number lives here once, under a flat key ``<paper>/<table>/<row>/<column>``:

>>> from defectlib import papers
>>> papers.lookup("danet/table3/phase5/crazing")          # AP50 %, DANet Table 3
51.42
>>> papers.lookup("ocinet/table1/OCINet/man-made/IoU")
71.8
>>> papers.keys("ocinet/table3/+C/")                      # every key under a prefix
['ocinet/table3/+C/man-made/IoU', 'ocinet/table3/+C/man-made/Dice', ...]
>>> papers.ref("synth/table1/SynthClutch (FT)/U-Net")      # value, unit, source, note
Ref(value=40.5, unit='%', source='paper 004, Table 1 (F1)', note='')

A notebook passes the key to ``Recorder.metric(..., paper=key)``; :mod:`defectlib.course.report` looks it
up. Sources: the papers in the course (000 DANet, 001 Severstal two-stage, 003 OCINet, 004
synthetic data), read from their text; the few numbers that come from elsewhere (the authors' code,
the Kaggle competition, other papers) say so in their ``source``. The course's notes on each paper,
docs/papers.md, say what it states, what it leaves open and what the course chose there. Where a
number needs a caveat, the ``note`` says so. Keys are case-sensitive; :data:`ALIASES` maps a few
other spellings to the paper's own row names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class Ref:
    """One published number: ``value`` in ``unit``, where it was printed, and any caveat."""

    value: Any
    unit: str
    source: str
    note: str = ""


TABLES: dict[str, Ref] = {}

# Row/column spellings used in code, mapped to the paper's own (path segments).
ALIASES = {
    "DeepLabV3": "DLv3",
    "RealClutch": "RealClutch (baseline)",
    "Severstal (FT)": "Severstal Steel (FT)",
    "Severstal": "Severstal Steel",
    "DANet": "phase5",
    "abstract": "intro",   # paper 001's numbers are in its introduction (Sec. 1), not its abstract
}


def _add(key: str, value: Any, unit: str, source: str, note: str = "") -> None:
    if key in TABLES:
        raise ValueError(f"duplicate paper key {key!r}")
    TABLES[key] = Ref(value, unit, source, note)


def _grid(prefix: str, rows: dict[str, Iterable[float]], cols: Iterable[str], unit: str,
          source: str, note: str = "") -> None:
    cols = list(cols)
    for row, values in rows.items():
        values = list(values)
        if len(values) != len(cols):
            raise ValueError(f"{prefix}/{row}: {len(values)} values for {len(cols)} columns")
        for col, value in zip(cols, values):
            _add(f"{prefix}/{row}/{col}", value, unit, source, note)


# --- paper 000: DANet on NEU-DET ------------------------------------------------------------------
NEU_CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
_AP_COLS = NEU_CLASSES + ("mAP",)

_grid("danet/table3", {
    "phase1": (34.10, 73.40, 80.93, 75.29, 49.93, 91.95, 67.60),   # Faster R-CNN, single scale
    "phase2": (36.91, 74.49, 84.79, 77.32, 59.31, 97.66, 71.74),   # + ResNet50-FPN
    "phase3": (46.89, 75.57, 88.92, 80.28, 63.23, 97.33, 75.47),   # + DCN
    "phase4": (52.11, 79.60, 87.19, 83.40, 63.08, 97.35, 77.12),   # + CBAM
    "phase5": (51.42, 79.49, 92.43, 81.04, 68.22, 96.93, 78.27),   # + focal loss = DANet
}, _AP_COLS, "%", "paper 000, Table 3 (AP at IoU 0.5)")
TABLES["danet/table3/phase3/mAP"] = Ref(75.47, "%", "paper 000, Table 3 (AP at IoU 0.5)",
                                        "as printed; the mean of the six class APs is 75.37")
# Table 1 is phase 5 again, in another column order.
for _cls, _v in zip(_AP_COLS, (51.42, 79.49, 92.43, 81.04, 68.22, 96.93, 78.27)):
    _add(f"danet/table1/{_cls}", _v, "%", "paper 000, Table 1 (AP at IoU 0.5)")

PHASES = {  # Table 2: what each phase adds
    "phase1": "Faster R-CNN (single scale, RoIPool)", "phase2": "+ ResNet50-FPN",
    "phase3": "+ DCN", "phase4": "+ CBAM", "phase5": "+ focal loss (DANet)",
}

_grid("danet/table4", {
    "YOLOv5": (25.51, 69.49, 89.27, 75.96, 40.96, 78.99, 63.36),
    "RetinaNet": (46.75, 71.05, 93.16, 81.38, 43.31, 22.54, 59.69),
    "CenterNet": (18.38, 61.07, 77.17, 44.58, 24.25, 85.58, 51.83),
    "DETR": (44.64, 86.19, 91.67, 80.90, 66.54, 90.99, 76.82),
    "FCOS": (37.2, 82.0, 81.6, 90.7, 61.3, 90.3, 73.9),
    "TridentNet": (41.0, 82.9, 93.4, 90.3, 61.6, 92.5, 77.0),
    "DANet": (51.42, 79.49, 92.43, 81.04, 68.22, 96.93, 78.27),
}, _AP_COLS, "%", "paper 000, Table 4 (AP at IoU 0.5)",
    "splits differ between papers: compare loosely")
_add("danet/others/YOLOv8n/mAP", 77.7, "%", "published elsewhere, not in paper 000",
     "other split; compare loosely")
_add("danet/others/SDDNet/mAP", 88.8, "%", "published elsewhere, not in paper 000",
     "other split; compare loosely")

_S = "paper 000, Sec. IV-B"
_OURS = "not in paper 000: the course's choice (docs/papers.md#danet)"
for _k, _v, _s, _n in [
    ("lr", 0.02, _S, "usual for batch 16; linear scaling gives 0.005 at batch 4"),
    ("momentum", 0.9, _S, ""), ("weight_decay", 1e-4, _S, ""), ("batch_size", 4, _S, ""),
    ("epochs", 30, _S, ""),
    ("milestones", (20, 28), _S, "'decrease the learning rate at the 20th and 28th epochs'; no factor"),
    ("lr_gamma", 0.1, _OURS, "the factor of the two decreases, which the paper does not state: "
                             "the usual Faster R-CNN one"),
    ("train_images", 1440, "paper 000, Sec. IV-A",
     "'Conventionally' 1440 / 360; the per-class 240 / 60 stratification is the course's"),
    ("test_images", 360, "paper 000, Sec. IV-A", ""),
]:
    _add(f"danet/setup/{_k}", _v, "", _s, _n)
for _k, _v, _s in [("focal_gamma", 2.0, "Eq. 10; RetinaNet default"),
                   ("focal_alpha", 0.25, "Eq. 10; RetinaNet default"),
                   ("cbam_reduction", 16, "Eqs. 3-6; CBAM paper"),
                   ("cbam_spatial_kernel", 7, "Eq. 6"), ("fpn_channels", 256, "FPN over C2..C5"),
                   ("roi_output_size", 7, "RoIAlign"), ("roi_sampling_ratio", 2, "RoIAlign")]:
    _add(f"danet/setup/{_k}", _v, "", f"docs/papers.md#danet ({_s})")

# --- paper 001: Severstal two-stage ---------------------------------------------------------------
_SEV = "paper 001"
_add("severstal/intro/unet/Dice", 0.48, "", f"{_SEV}, Sec. 1 (U-Net alone, test set)",
     "not the Kaggle metric; the author's code pools the 4 channels per image, smoothed")
_add("severstal/intro/two-stage/Dice", 0.71, "",
     f"{_SEV}, Sec. 1 (classifier gate + U-Net, test set)",
     "not the Kaggle metric; the author's code pools the 4 channels per image, smoothed")
_add("severstal/table1/efficientnet-b3/Dice", 0.607, "",
     f"{_SEV}, Table 1 (segmentation only)", "ResNet34/ResNet50 rows are printed as 'XXX'")
_add("severstal/kaggle/empty-prediction", 0.86, "",
     "Kaggle mean Dice, not paper 001 (docs/papers.md#severstal-two-stage)",
     "about: most (image, class) pairs are empty and score 1")
_add("severstal/kaggle/winner-private", 0.9088, "", "Kaggle private leaderboard, not paper 001")

# Confusion matrices, rows = real defective/clean, columns = predicted defective/clean.
_CONF = {"resnet34": ((662, 54), (373, 711)), "resnet50": ((695, 21), (365, 719))}
for _name, ((_tp, _fn), (_fp, _tn)) in _CONF.items():
    _src = f"{_SEV}, Table {2 if _name == 'resnet34' else 3} (classifier confusion matrix)"
    _add(f"severstal/confusion/{_name}", ((_tp, _fn), (_fp, _tn)), "images", _src,
         "rows real defective/clean, columns predicted defective/clean")
    for _k, _v in (("TP", _tp), ("FN", _fn), ("FP", _fp), ("TN", _tn)):
        _add(f"severstal/confusion/{_name}/{_k}", _v, "images", _src)
    _n = _tp + _fn + _fp + _tn
    for _k, _v in (("recall", _tp / (_tp + _fn)), ("precision", _tp / (_tp + _fp)),
                   ("specificity", _tn / (_tn + _fp)), ("accuracy", (_tp + _tn) / _n)):
        _add(f"severstal/confusion/{_name}/{_k}", round(100 * _v, 2), "%", _src,
             "derived from the printed matrix")

for _k, _v, _n in [
    ("images", 12568, "train set"), ("height", 256, ""), ("width", 1600, ""), ("classes", 4, ""),
    ("seg_batch_size", 5, "random crops 256x384 / 256x512, alternating"),
    ("seg_lr", 1e-3, "Adam, halved on 'a plateau long three epochs' (of which loss: not said)"),
    ("plateau_factor", 0.5, ""),
    ("plateau_patience", 3, ""), ("bce_dice_epochs", 70, ""), ("tversky_epochs", 40, ""),
    ("tversky_alpha", 0.3, "paper Eq. 3 (weights FP by 0.7); the author's code uses 0.2/0.8"),
    ("cls_batch_size", 4, "full 256x1600 images"), ("cls_lr", 1e-3, "Adam"),
    ("gate_threshold", 0.5, "p(defective) below it -> all masks empty"),
    ("pixel_threshold", 0.5, ""),
]:
    _add(f"severstal/setup/{_k}", _v, "", f"{_SEV}, Secs. 3, 5 / docs/papers.md#severstal-two-stage", _n)
# The paper prints no threshold: 0.5, a sigmoid's midpoint and the usual default, is what the course
# uses as "the paper's setting" (keys kept; their source says so).
for _k in ("gate_threshold", "pixel_threshold"):
    _r = TABLES[f"severstal/setup/{_k}"]
    TABLES[f"severstal/setup/{_k}"] = Ref(
        _r.value, _r.unit, "not printed in paper 001: the usual default, the course's stand-in for the "
        "paper's setting (docs/papers.md#severstal-two-stage)", _r.note)

# --- paper 003: OCINet on NRSD-MN -----------------------------------------------------------------
_MET = ("PA", "wFm", "IoU", "Dice")
_OCI_NOTE = "'PA' is foreground recall TP/|GT| in the authors' code, not pixel accuracy"
for _model, _mm, _nat in [
    ("OCINet", (85.4, 84.7, 71.8, 82.4), (72.9, 76.0, 65.5, 74.2)),
    ("NaDiNet", (84.2, 84.4, 71.3, 82.1), (72.5, 75.5, 65.2, 73.6)),
    ("MCnet", (79.4, 82.3, 68.1, 79.7), (69.5, 73.3, 62.6, 71.6)),
]:
    _grid(f"ocinet/table1/{_model}", {"man-made": _mm, "natural": _nat}, _MET, "%",
          "paper 003, Table I")
    for _split in ("man-made", "natural"):
        _k = f"ocinet/table1/{_model}/{_split}/PA"
        TABLES[_k] = Ref(TABLES[_k].value, "%", "paper 003, Table I", _OCI_NOTE)
for _row, _mm, _nat in [
    ("Base", (70.7, 81.6), (63.4, 72.1)), ("+C", (71.3, 82.0), (64.3, 73.0)),
    ("+S", (71.2, 81.9), (64.3, 73.4)), ("+C+S", (71.4, 82.1), (65.1, 73.9)),
    ("+P", (71.4, 82.0), (64.6, 73.6)), ("full", (71.8, 82.4), (65.5, 74.2)),
]:
    _grid(f"ocinet/table3/{_row}", {"man-made": _mm, "natural": _nat}, ("IoU", "Dice"), "%",
          "paper 003, Table III (ablation)")
# Table III rows 6-14 (paper only): vanilla attention and "w/o CS" (no cross-scale interaction).
for _row, _mm, _nat in [
    ("vanilla CA", (71.1, 81.8), (64.0, 72.8)), ("vanilla SA", (70.7, 81.6), (64.1, 73.2)),
    ("SWSAM", (70.9, 81.7), (63.9, 73.1)), ("RSCAM", (71.2, 81.9), (63.8, 72.8)),
    ("LSKM", (71.0, 81.7), (64.3, 73.2)), ("+C w/o CS", (70.9, 81.6), (63.9, 72.9)),
    ("+S w/o CS", (70.8, 81.6), (63.8, 72.6)), ("+P w/o CS", (71.0, 81.8), (63.7, 72.5)),
    ("+C+S+P w/o CS", (71.3, 82.0), (64.4, 73.4)),
]:
    _grid(f"ocinet/table3/{_row}", {"man-made": _mm, "natural": _nat}, ("IoU", "Dice"), "%",
          "paper 003, Table III (ablation)")
for _row, _params in [("Base", 27.857), ("+C", 28.177), ("+S", 28.153), ("+C+S", 28.473),
                      ("+P", 29.336), ("vanilla CA", 28.177), ("vanilla SA", 28.152),
                      ("SWSAM", 28.154), ("RSCAM", 28.176), ("LSKM", 28.507),
                      ("+C w/o CS", 27.865), ("+S w/o CS", 27.857), ("+P w/o CS", 29.436),
                      ("+C+S+P w/o CS", 29.444), ("full", 29.952)]:
    _add(f"ocinet/table3/{_row}/params_M", _params, "M", "paper 003, Table III")
_add("ocinet/table2/global-global-local/params_M", 29.952, "M", "paper 003, Table II")
_grid("ocinet/table2/global-global-local", {"man-made": (71.5, 82.1), "natural": (65.0, 73.9)},
      ("IoU", "Dice"), "%", "paper 003, Table II (interaction order)")
_add("ocinet/table1/OCINet/params_M", 29.95, "M", "paper 003, Table I")
_add("ocinet/table1/OCINet/FLOPs_G", 18.82, "G", "paper 003, Table I", "at 352x352")
_add("ocinet/table1/OCINet/FPS", 108, "images/s", "paper 003, Table I", "RTX 3090")
_add("ocinet/table1/UNet/params_M", 31.04, "M", "paper 003, Table I", "UNet15, VGG backbone")
_add("ocinet/table1/UNet/FLOPs_G", 91.34, "G", "paper 003, Table I", "UNet15 at 352x352")
_add("ocinet/table1/UNet/FPS", 213, "images/s", "paper 003, Table I", "UNet15, RTX 3090")
_add("ocinet/params/backbone_M", 24.85, "M", "not in paper 003: timm pvt_v2_b2, no classifier")
_add("ocinet/params/head_M", 5.1, "M", "not in paper 003: Table I's 29.95 M minus the backbone", "about")

for _k, _v, _n in [
    ("backbone_depths", (3, 4, 6, 3), "PVT-v2-b2"), ("backbone_heads", (1, 2, 5, 8), ""),
    ("backbone_mlp_ratios", (8, 8, 4, 4), ""), ("backbone_sr_ratios", (8, 4, 2, 1), ""),
    ("backbone_channels", (64, 128, 320, 512), ""), ("backbone_strides", (4, 8, 16, 32), ""),
    ("input_size", 352, ""), ("channels", 128, "every stage reduced to C"),
    ("ccim_groups", 4, "groups of 32 channels"), ("ccim_hidden", 16, "shared MLP 64 -> 16 -> 64"),
    ("csim_kernel", 7, ""), ("cpim_gamma_init", 1.0, ""), ("cpim_dropout", 0.1, ""),
    ("dr_dropout", 0.5, ""), ("loss_weights", (1.0, 1.0, 0.5, 0.25), "BCE + soft IoU per map"),
    ("lr", 1e-4, "Adam"), ("batch_size", 16, ""), ("epochs", 70, "about"),
    ("milestones", (30,), "'the decay epoch ... 30' (Sec. IV-A-2), no factor: the course's 0.1 is the "
                          "decay_rate of the authors' training script"),
]:
    _add(f"ocinet/setup/{_k}", _v, "", "paper 003 / the authors' code (docs/papers.md#ocinet)", _n)

# --- paper 004: synthetic data for defect segmentation --------------------------------------------
_SYN_ROWS = {  # (P, R, F1) for FCN, DLv3, U-Net, on the RealClutch test split
    "RealClutch (baseline)": (53.2, 19.4, 28.4, 59.1, 16.5, 25.8, 55.7, 21.7, 31.3),
    "DAGM": (0.0, 4.6, 0.1, 1.0, 0.1, 0.1, 0.1, 5.9, 0.2),
    "KSDD2": (1.5, 5.1, 2.3, 2.2, 6.5, 3.3, 0.7, 7.0, 1.3),
    "Severstal Steel": (1.0, 9.7, 1.8, 1.7, 9.0, 2.9, 1.0, 3.2, 1.5),
    "MTD": (7.7, 10.2, 8.8, 23.5, 9.9, 13.9, 8.7, 11.6, 10.0),
    "CSEM-MISD": (6.5, 6.9, 6.7, 9.3, 3.8, 5.4, 4.6, 5.0, 4.8),
    "DAGM (FT)": (15.5, 4.7, 7.2, 9.3, 5.3, 6.7, 20.0, 3.3, 5.6),
    "KSDD2 (FT)": (8.0, 3.9, 5.3, 2.2, 1.2, 1.5, 3.6, 0.8, 1.3),
    "Severstal Steel (FT)": (33.7, 12.9, 18.6, 19.5, 8.6, 11.9, 6.1, 12.0, 8.0),
    "MTD (FT)": (28.8, 10.5, 15.3, 48.1, 6.6, 11.5, 48.0, 9.5, 15.9),
    "CSEM-MISD (FT)": (55.2, 17.5, 26.5, 55.0, 19.9, 29.2, 46.3, 13.5, 20.9),
    "SynthClutch": (59.3, 10.7, 18.1, 57.4, 10.7, 18.1, 67.2, 10.8, 18.7),
    "SynthClutch (FT)": (69.6, 24.0, 35.7, 63.1, 25.5, 36.3, 67.6, 28.9, 40.5),
    "RealClutch (EX)": (59.0, 16.3, 25.5, 54.8, 17.9, 27.0, 55.2, 20.3, 29.7),
    "SynthClutch (EX)": (58.1, 11.6, 19.4, 57.5, 12.0, 19.8, 60.0, 11.6, 19.4),
    "SynthClutch (EX+FT)": (67.9, 24.2, 35.7, 67.6, 27.7, 39.3, 64.9, 23.5, 34.6),
}
SYNTH_MODELS = ("FCN", "DLv3", "U-Net")
for _row, _vals in _SYN_ROWS.items():
    for _i, _model in enumerate(SYNTH_MODELS):
        _p, _r, _f1 = _vals[3 * _i: 3 * _i + 3]
        _src = "paper 004, Table 1"
        _add(f"synth/table1/{_row}/{_model}", _f1, "%", f"{_src} (F1)")
        for _m, _v in (("P", _p), ("R", _r), ("F1", _f1)):
            _add(f"synth/table1/{_row}/{_model}/{_m}", _v, "%", f"{_src} ({_m})")

for _k, _v, _n in [
    ("dent_size_mm", (0.2, 2.0), "range"), ("scratch_width_mm", (0.05, 0.3), "range"),
    ("crop_size", 256, "intensity-biased crop"), ("crop_intensity_threshold", 10, ""),
    ("exposures", (0, 1, 2), "channels x * 2^a"), ("batch_size", 16, "AdamW, BCE"),
    ("lr_grid", (1e-3, 1e-4), ""), ("weight_decay_grid", (1e-4, 1e-5), ""),
    ("lr_halve_every", 50, "epochs"), ("early_stop_rel", 0.01, ""), ("early_stop_patience", 5, ""),
    ("finetune_lr", 1e-4, ""), ("eval_patch", (416, 352), "half-resolution, padded to /96"),
    ("max_epochs", 1000, ""),
]:
    _add(f"synth/setup/{_k}", _v, "", "paper 004, Secs. 3-5 (docs/papers.md#synthetic-data)", _n)


# --- look-ups -------------------------------------------------------------------------------------
def canonical(key: str) -> str:
    """``key`` with :data:`ALIASES` applied to each path segment (unknown keys pass through)."""
    if key in TABLES:
        return key
    return "/".join(ALIASES.get(part, part) for part in key.split("/"))


def ref(key: str) -> Ref:
    """The :class:`Ref` for ``key``; a KeyError lists the nearest existing keys."""
    found = TABLES.get(canonical(key))
    if found is None:
        parent = key.rsplit("/", 1)[0]
        near = keys(parent + "/")[:8] or keys(key.split("/", 1)[0] + "/")[:8]
        raise KeyError(f"no paper number under {key!r}; keys nearby: {near}")
    return found


def lookup(key: str) -> Any:
    """The paper's number for ``key`` (for example ``"danet/table3/phase5/mAP"`` -> 78.27)."""
    return ref(key).value


def get(key: str | None, default: Any = None) -> Any:
    """Like :func:`lookup` but returns ``default`` for None or an unknown key."""
    if key is None:
        return default
    try:
        return lookup(key)
    except KeyError:
        return default


def keys(prefix: str = "") -> list[str]:
    """All keys starting with ``prefix``, in the order the papers print them."""
    return [k for k in TABLES if k.startswith(prefix)]


def describe(key: str) -> str:
    """One line for listings: ``78.27% (paper 000, Table 3 (AP at IoU 0.5))``."""
    r = ref(key)
    unit = f" {r.unit}" if r.unit and r.unit != "%" else r.unit
    return f"{r.value}{unit} ({r.source})" + (f"; {r.note}" if r.note else "")
