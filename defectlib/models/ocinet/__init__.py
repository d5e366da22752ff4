"""OCINet (Li, Zhou, Li: "Ordered Cross-Scale Interaction Network for No-Service Rail Surface Defect
Segmentation"): one module per paper component, one builder for the ablation variants (every row of
Tables II and III except Table III's rows 8-10, which add other papers' attention modules).

    backbone.py  PVT-v2-b2 (timm) + per-level channel adjustment      Sec. III-A
    ccim.py      CCIM + collaborative channel attention unit          Sec. III-B, Fig. 3
    csim.py      CSIM + collaborative spatial attention unit          Sec. III-C, Fig. 4
    cpim.py      CPIM (per-channel cross-scale self-attention)        Sec. III-D, Fig. 5
    fusion.py    fusion units; cross-scale vs per-level application   Fig. 2
    reasoner.py  defect reasoner DR1-DR4, SegHeads, deep supervision  Sec. III-E
    vanilla.py   vanilla CA / SA for the ablations                    Table III
    model.py     OCINet, VARIANTS, build_ocinet                       Tables II, III
"""
from defectlib.complexity import count_parameters  # re-exported: the Table III #Param column

from .ccim import CCIM, CollaborativeChannelAttentionUnit, channel_shuffle
from .cpim import CPIM, PixelAttention
from .csim import CSIM, CollaborativeSpatialAttentionUnit
from .model import OCINet, VARIANTS, Variant, build_ocinet, capture_attention
from .reasoner import DEEP_SUPERVISION_WEIGHTS, DefectReasoner

__all__ = ["CCIM", "CollaborativeChannelAttentionUnit", "channel_shuffle", "CPIM", "PixelAttention",
           "CSIM", "CollaborativeSpatialAttentionUnit", "OCINet", "VARIANTS", "Variant", "build_ocinet",
           "capture_attention", "count_parameters", "DEEP_SUPERVISION_WEIGHTS", "DefectReasoner"]
