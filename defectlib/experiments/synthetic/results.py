"""What notebook 04 reports: pixel precision, recall and F1 (%) of every architecture and arm on the
MTD test tiles, recorded under ``<arch>/<arm>/<P|R|F1>`` beside the paper's Table 1 row the arm
stands for (paper 004: RealClutch target there, MTD here; SynthClutch there, SynthTile here)."""
from __future__ import annotations

from ...models.seg_baselines import LABELS
from ...record.tables import Col, Row, results
from ...record.verdict import Claim
from .recipe import OUR_ROW, PAPER_ROW


def record_rows(rec, rows: list[dict], target: dict, sc) -> None:
    """Record each ``run_arch`` row's P / R / F1 (rounded to 0.01) with its paper key and a note
    saying what it was trained on and how long."""
    for r in rows:
        lab, arm = LABELS[r["arch"]], r["arm"]
        note = (f"{OUR_ROW[arm]} vs paper row {PAPER_ROW[arm]}; {len(target['train'])} MTD train tiles; "
                f"pre-train epochs {r['pretrain_epochs']}, FT/train epochs {r['epochs']} of "
                f"{sc.steps_per_epoch or 'all'} steps")
        rec.metrics({k: round(r[k], 2) for k in ("P", "R", "F1")}, prefix=f"{r['arch']}/{arm}",
                    paper={k: f"synth/table1/{PAPER_ROW[arm]}/{lab}/{k}" for k in ("P", "R", "F1")},
                    dataset="MTD", real=target["real"], unit="%", note=note)


def table1(rec, archs, arms):
    """Table 1 analogue: each architecture and arm, the paper's line for the arm it stands for."""
    rows = [Row(f"{LABELS[arch]}: {OUR_ROW[arm]} / paper: {PAPER_ROW[arm]}", ours=f"{arch}/{arm}",
                paper=f"synth/table1/{PAPER_ROW[arm]}/{LABELS[arch]}") for arch in archs for arm in arms]
    return results(rec, rows, [Col(k, k, k) for k in ("P", "R", "F1")],
                   title="Table 1 analogue: pixel P / R / F1 (%), ours on MTD, the paper on RealClutch")


#: the paper's claims, judged by :func:`defectlib.record.verdict.judge_runs` over the seeds. No
#: trivial baseline (``Claim.baseline``): the real-only arm, arm b of the first claim, is the paper's
#: baseline but a trained model, the very thing the claim asks synthetic pre-training to beat, not an
#: answer that needs no model. The trivial answers for pooled pixel F1 are predicting nothing (F1 0,
#: below every arm) and marking every pixel (F1 = 2s / (1 + s) for a defect share s of the test
#: pixels: under 8 % for MTD's defects of 0.2-4 % of a tile), neither recorded and neither a bar
#: the arms' mean F1 (9.7-15.4 over the committed seeds) falls under.
CLAIMS = (
    Claim("synthetic pre-training + fine-tuning beats real-only training, U-Net F1 (paper 004, Table 1)",
          "unet/synth_ft/F1", "unet/real/F1", ("SynthTile (FT)", "real-only")),
    Claim("synthetic pre-training + fine-tuning beats planar pre-training + fine-tuning, U-Net F1",
          "unet/synth_ft/F1", "unet/planar_ft/F1", ("SynthTile (FT)", "NEU-Seg (FT)")),
)
