"""Notebook 02's experiment: the two-stage Severstal pipeline (paper 001), a U-Net per encoder
(ResNet-34 / ResNet-50 / EfficientNet-B3, 4 sigmoid outputs) and a ResNet defective / clean gate.

The data, loaders and training stages live in :mod:`defectlib.two_stage` (to move here)."""
from __future__ import annotations

from .. import two_stage as ts
from ..losses import BCEDiceLoss
from ..models.classifier import build_classifier
from ..models.unet import build_unet


def _planned(cfg, epochs: int, per_epoch: int) -> int:
    steps = epochs * per_epoch
    return min(steps, cfg.get("max_steps") or steps)


def doctor_probes(cfg, data_root=None, seed: int = 0):
    """Every U-Net encoder of the profile and its gate, for ``defectlib doctor``."""
    from ..doctor import Probe
    seg_task, gate_task = ts.build_tasks(cfg, data_root, seed)
    workers = cfg.get("num_workers", 0)

    def seg_loader():
        return ts.seg_loader(seg_task, cfg["seg_batch_size"], cfg["steps_per_epoch"], cfg["dark_threshold"], seed,
                             workers)

    def gate_loader():
        return ts.gate_loader(gate_task, cfg["cls_batch_size"], cfg["cls_steps_per_epoch"], seed, workers)

    adam = {"optimizer": "adam", "lr": cfg["lr"]}
    seg_steps = _planned(cfg, cfg["seg_epochs"], len(seg_loader())) + (
        _planned(cfg, cfg["tversky_epochs"], len(seg_loader())) if cfg["tversky_epochs"] else 0)
    out = [Probe("02", f"U-Net-{enc}, {seg_task.num_classes} classes",
                 lambda enc=enc: build_unet(enc, seg_task.num_classes, in_channels=1), seg_loader,
                 ts.seg_loss(BCEDiceLoss()), adam, seg_steps, dataset=seg_task.dataset)
           for enc in cfg["encoders"]]
    out.append(Probe("02", f"gate {cfg['classifier']}", lambda: build_classifier(cfg["classifier"], in_channels=1),
                     gate_loader, ts.gate_loss, adam, _planned(cfg, cfg["cls_epochs"], len(gate_loader())),
                     dataset=gate_task.dataset))
    return out
