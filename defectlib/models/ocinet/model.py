"""OCINet: the full model, its ablation variants (Tables II and III) and one builder.

OCINet, Sec. III-A and Fig. 2 (global-local-global strategy):

    f_b^i  = Conv(FE^i(image))                          PVT-v2-b2 stages, c = 128   (global)
    f_ci   = CCIM(f_b)       channel interaction of adjacent levels                 (local)
    f_si   = CSIM(f_ci)      spatial interaction of adjacent levels                 (local)
    f_cs^i = f_si^i + f_b^i  residual (authors' code)
    f_pi   = CPIM(f_cs)      pixel interaction of adjacent levels                   (global)
    S^1..S^4 = DefectReasoner(f_pi)                     logits at the input size

``build_ocinet(variant)`` builds every row of Table III and Table II from four switches:

    ccim:  "ccim" | "vanilla" (Base+vanilla CA) | "single" (C. w/o CS) | None
    csim:  "csim" | "vanilla" (Base+vanilla SA) | "single" (S. w/o CS) | None
           | "swsam" | "rscam" | "lskm" (Base+SWSAM / RSCAM / LSKM, rows 8-10: other papers'
             attention modules in CSIM's place, see :mod:`.swsam`, :mod:`.rscam`, :mod:`.lskm`)
    cpim:  "cpim" | "single" (P. w/o CS) | None
    order: "glg" (global-local-global, the paper's) | "ggl" (CPIM before CCIM/CSIM, Table II)

The local block (CCIM and/or CSIM) is always wrapped by the residual ``+ f`` of its input. With
``channels=128`` each variant's parameter count equals Table III's to the printed 0.001M (the tests
pin every one). How rows 8-10 insert their modules is not in the paper: the parameter counts decide
(the modules' docstrings).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from torch import Tensor, nn

from .backbone import ChannelAdjust, PVTv2Backbone
from .ccim import CCIM
from .cpim import CPIM
from .csim import CSIM
from .fusion import ConcatPair, CrossScaleStage, PerLevelStage, ScalewisePair
from .lskm import LargeSelectiveKernel
from .reasoner import DefectReasoner
from .rscam import RectangularSelfCalibrationAttention
from .swsam import SWSAM
from .vanilla import ChannelAttention, ConcatChannelAttention, ConcatSpatialAttention, SpatialAttention


@dataclass(frozen=True)
class Variant:
    """One row of Table II / III: label, the paper's #Param (M), switches, and the row's key prefix
    in :mod:`defectlib.papers` (``paper + "/man-made/IoU"`` etc.)."""
    label: str
    params_m: float
    switches: dict = field(default_factory=dict)
    paper: str = ""


_NONE = dict(ccim=None, csim=None, cpim=None)
VARIANTS: dict[str, Variant] = {
    "base": Variant("Base", 27.857, dict(_NONE),
                     "ocinet/table3/Base"),
    "c": Variant("Base+C.", 28.177, dict(_NONE, ccim="ccim"),
                  "ocinet/table3/+C"),
    "s": Variant("Base+S.", 28.153, dict(_NONE, csim="csim"),
                  "ocinet/table3/+S"),
    "cs": Variant("Base+C.+S.", 28.473, dict(_NONE, ccim="ccim", csim="csim"),
                   "ocinet/table3/+C+S"),
    "p": Variant("Base+P.", 29.336, dict(_NONE, cpim="cpim"),
                  "ocinet/table3/+P"),
    "vanilla_ca": Variant("Base+vanilla CA", 28.177, dict(_NONE, ccim="vanilla"),
                           "ocinet/table3/vanilla CA"),
    "vanilla_sa": Variant("Base+vanilla SA", 28.152, dict(_NONE, csim="vanilla"),
                           "ocinet/table3/vanilla SA"),
    "swsam": Variant("Base+SWSAM", 28.154, dict(_NONE, csim="swsam"),
                      "ocinet/table3/SWSAM"),
    "rscam": Variant("Base+RSCAM", 28.176, dict(_NONE, csim="rscam"),
                      "ocinet/table3/RSCAM"),
    "lskm": Variant("Base+LSKM", 28.507, dict(_NONE, csim="lskm"),
                     "ocinet/table3/LSKM"),
    "c_wocs": Variant("Base+C. w/o CS", 27.865, dict(_NONE, ccim="single"),
                       "ocinet/table3/+C w/o CS"),
    "s_wocs": Variant("Base+S. w/o CS", 27.857, dict(_NONE, csim="single"),
                       "ocinet/table3/+S w/o CS"),
    "p_wocs": Variant("Base+P. w/o CS", 29.436, dict(_NONE, cpim="single"),
                       "ocinet/table3/+P w/o CS"),
    "csp_wocs": Variant("Base+C.+S.+P. w/o CS", 29.444, dict(ccim="single", csim="single", cpim="single"),
                         "ocinet/table3/+C+S+P w/o CS"),
    "full": Variant("OCINet (Base+C.+S.+P.)", 29.952, dict(ccim="ccim", csim="csim", cpim="cpim"),
                     "ocinet/table3/full"),
    "ggl": Variant("Global-global-local", 29.952, dict(ccim="ccim", csim="csim", cpim="cpim", order="ggl"),
                    "ocinet/table2/global-global-local"),
}


def _channel_stage(kind: str | None, c: int) -> nn.Module | None:
    if kind is None:
        return None
    if kind == "ccim":
        return CrossScaleStage(lambda: CCIM(c), c)
    if kind == "vanilla":
        return CrossScaleStage(lambda: ConcatChannelAttention(c), c)
    if kind == "single":
        return PerLevelStage(lambda: ChannelAttention(c))
    raise ValueError(f"ccim={kind!r}: choose 'ccim', 'vanilla', 'single' or None")


def _spatial_stage(kind: str | None, c: int) -> nn.Module | None:
    if kind is None:
        return None
    if kind == "csim":
        return CrossScaleStage(CSIM, c)
    if kind == "vanilla":
        return CrossScaleStage(ConcatSpatialAttention, c)
    if kind == "single":
        return PerLevelStage(SpatialAttention)
    if kind == "swsam":
        return CrossScaleStage(lambda: ScalewisePair(SWSAM), c)
    if kind == "rscam":
        return CrossScaleStage(lambda: ConcatPair(RectangularSelfCalibrationAttention(2 * c)), c)
    if kind == "lskm":
        return CrossScaleStage(lambda: ConcatPair(LargeSelectiveKernel(2 * c)), c)
    raise ValueError(f"csim={kind!r}: choose 'csim', 'vanilla', 'single', 'swsam', 'rscam', 'lskm' or None")


def _pixel_stage(kind: str | None, c: int) -> nn.Module | None:
    if kind is None:
        return None
    if kind == "cpim":
        return CrossScaleStage(lambda: CPIM(c), c)
    if kind == "single":
        return PerLevelStage(lambda: CPIM(c, cross_scale=False))
    raise ValueError(f"cpim={kind!r}: choose 'cpim', 'single' or None")


class OCINet(nn.Module):
    """Ordered Cross-scale Interaction Network. ``forward(x)`` returns logits ``[S^1, S^2, S^3, S^4]``,
    each ``[B, 1, H, W]``; S^1 is the prediction, S^2..S^4 the deep-supervision side outputs.

    ``x`` is ``[B, 1 or 3, H, W]`` in [0, 1], H and W divisible by 32 (352 in the paper).
    """

    def __init__(self, ccim: str | None = "ccim", csim: str | None = "csim", cpim: str | None = "cpim",
                 order: str = "glg", channels: int = 128, weights: str | Path | None = None,
                 normalize: bool = True):
        super().__init__()
        if order not in ("glg", "ggl"):
            raise ValueError(f"order={order!r}: choose 'glg' (global-local-global) or 'ggl'")
        self.config = dict(ccim=ccim, csim=csim, cpim=cpim, order=order, channels=channels)
        self.order = order
        self.backbone = PVTv2Backbone(weights=weights, normalize=normalize)
        self.adjust = ChannelAdjust(self.backbone.channels, channels)
        self.ccim = _channel_stage(ccim, channels)
        self.csim = _spatial_stage(csim, channels)
        self.cpim = _pixel_stage(cpim, channels)
        self.reasoner = DefectReasoner(channels)
        self._init_new_layers()

    def _init_new_layers(self) -> None:
        """Kaiming initialisation of every layer outside the backbone (Sec. IV-A-2)."""
        for name, m in self.named_modules():
            if name.startswith("backbone"):
                continue
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _local(self, feats: list[Tensor], out: dict) -> list[Tensor]:
        if self.ccim is None and self.csim is None:
            return feats
        f = feats
        if self.ccim is not None:
            f = out["ccim"] = self.ccim(f)
        if self.csim is not None:
            f = out["csim"] = self.csim(f)
        return [a + b for a, b in zip(f, feats)]

    def _global(self, feats: list[Tensor], out: dict) -> list[Tensor]:
        if self.cpim is None:
            return feats
        out["cpim"] = self.cpim(feats)
        return out["cpim"]

    def forward_features(self, x: Tensor) -> dict[str, list[Tensor]]:
        """Every intermediate pyramid, keyed ``basic`` (f_b), ``ccim``, ``csim``, ``cpim`` (those the
        variant has) and ``final`` (what the reasoner reads)."""
        out: dict[str, list[Tensor]] = {}
        feats = out["basic"] = self.adjust(self.backbone(x))
        steps = (self._local, self._global) if self.order == "glg" else (self._global, self._local)
        for step in steps:
            feats = step(feats, out)
        out["final"] = feats
        return out

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.reasoner(self.forward_features(x)["final"], x.shape[2:])


def build_ocinet(variant: str = "full", *, weights: str | Path | None = None, channels: int = 128,
                 normalize: bool = True, **switches) -> OCINet:
    """Build OCINet or one of its ablation variants.

    ``variant`` is a key of :data:`VARIANTS` (``"full"``, ``"base"``, ``"c"``, ``"s"``, ``"cs"``,
    ``"p"``, ``"vanilla_ca"``, ``"vanilla_sa"``, ``"swsam"``, ``"rscam"``, ``"lskm"``, ``"c_wocs"``,
    ``"s_wocs"``, ``"p_wocs"``, ``"csp_wocs"``, ``"ggl"``); keyword ``switches`` (ccim=, csim=, cpim=,
    order=) override it.
    ``weights`` is a local PVT-v2-b2 checkpoint for the backbone, or None (random; nothing is
    downloaded).
    """
    if variant not in VARIANTS:
        raise KeyError(f"unknown OCINet variant {variant!r}; known: {sorted(VARIANTS)}")
    config = dict(VARIANTS[variant].switches)
    unknown = set(switches) - {"ccim", "csim", "cpim", "order"}
    if unknown:
        raise TypeError(f"build_ocinet got unknown switches {sorted(unknown)}")
    config.update(switches)
    return OCINet(**config, channels=channels, weights=weights, normalize=normalize)


ATTENTION_MODULES = ("gate", "pixel_attention")


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[dict[str, object]]:
    """Record every attention map computed inside the ``with`` block.

    Yields a dict filled as the model runs: ``{module name: output}`` for each channel / spatial gate
    (sigmoid outputs: CCAU ``ca``, CSAU ``sa``) and each ``pixel_attention`` (the pair ``(A1, A2)``).
    """
    store: dict[str, object] = {}
    handles = []
    for name, module in model.named_modules():
        if name.split(".")[-1] in ATTENTION_MODULES:
            def hook(_m, _inp, output, name=name):
                store[name] = tuple(o.detach() for o in output) if isinstance(output, tuple) else output.detach()
            handles.append(module.register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()
