"""Notebook 03's experiment: OCINet (paper 003, PVT-v2-b2 + CCIM / CSIM / CPIM + defect reasoner with
deep supervision) and its ablation variants on NRSD-MN (or real NEU-Seg + MTD in its place).

The data, loss and evaluation live in :mod:`defectlib.models.ocinet.experiment` (to move here)."""
from __future__ import annotations

from ..models.ocinet import build_ocinet
from ..models.ocinet import experiment as X


def doctor_probes(cfg, data_root=None, seed: int = 0):
    """The full OCINet (every variant costs about the same), for ``defectlib doctor``."""
    from ..doctor import Probe
    data = X.build_data(data_root, size=cfg["input_size"], seed=seed, augment=cfg["augment"],
                        test_limit=cfg["test_limit"])
    per_variant = cfg["epochs"] * len(X.train_loader(data, cfg, seed))
    steps = len(cfg["variants"]) * min(per_variant, cfg.get("max_steps") or per_variant)
    train = {k: v for k, v in X.train_config(cfg).to_dict().items()
             if k in ("optimizer", "lr", "grad_clip", "schedule", "milestones", "gamma", "epochs")}
    return [Probe("03", "OCINet (full)", lambda: build_ocinet("full"), lambda: X.train_loader(data, cfg, seed),
                  X.ocinet_loss_fn(), train, steps, dataset=data.dataset, notes=weights_notes(cfg))]


def weights_notes(cfg) -> list[str]:
    """Whether the PVT-v2-b2 ImageNet weights the profile starts from are on this machine (the doctor
    trains from random weights: the speed is the same)."""
    if not cfg.get("backbone_weights"):
        return []
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = X.backbone_weights(cfg["backbone_weights"], dry_run=True)
    if found:
        return [f"weights: the PVT-v2-b2 ImageNet weights the run starts from are at {found}"]
    return [f"weights: missing, the run would stop before training: {caught[0].message}"]
