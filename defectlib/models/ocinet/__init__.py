"""OCINet (Li, Zhou, Li: "Ordered Cross-Scale Interaction Network for No-Service Rail Surface Defect
Segmentation"): one module per paper component, one builder for the ablation variants (every row of
Tables II and III, including Table III's rows 8-10, which put other papers' attention modules in
CSIM's place).

    backbone.py  PVT-v2-b2 (timm) + per-level channel adjustment      Sec. III-A
    ccim.py      CCIM + collaborative channel attention unit          Sec. III-B, Fig. 3
    csim.py      CSIM + collaborative spatial attention unit          Sec. III-C, Fig. 4
    cpim.py      CPIM (per-channel cross-scale self-attention)        Sec. III-D, Fig. 5
    fusion.py    fusion units; cross-scale vs per-level application   Fig. 2
    reasoner.py  defect reasoner DR1-DR4, SegHeads, deep supervision  Sec. III-E
    vanilla.py   vanilla CA / SA for the ablations                    Table III
    swsam.py     SWSAM (GeleNet, ref. [21])                           Table III, row 8
    rscam.py     RSCAM = CGRSeg's RCA (ref. [54])                     Table III, row 9
    lskm.py      LSK block (LSKNet, ref. [55])                        Table III, row 10
    model.py     OCINet, VARIANTS, build_ocinet                       Tables II, III
"""
from defectlib.complexity import count_parameters  # re-exported: the Table III #Param column

from .ccim import CCIM, CollaborativeChannelAttentionUnit, channel_shuffle
from .cpim import CPIM, PixelAttention
from .csim import CSIM, CollaborativeSpatialAttentionUnit
from .lskm import LargeSelectiveKernel
from .rscam import RectangularSelfCalibrationAttention
from .swsam import SWSAM
from .model import OCINet, VARIANTS, Variant, build_ocinet, capture_attention
from .reasoner import DEEP_SUPERVISION_WEIGHTS, DefectReasoner

__all__ = ["CCIM", "CollaborativeChannelAttentionUnit", "channel_shuffle", "CPIM", "PixelAttention",
           "CSIM", "CollaborativeSpatialAttentionUnit", "OCINet", "VARIANTS", "Variant", "build_ocinet",
           "capture_attention", "count_parameters", "DEEP_SUPERVISION_WEIGHTS", "DefectReasoner",
           "SWSAM", "RectangularSelfCalibrationAttention", "LargeSelectiveKernel"]
