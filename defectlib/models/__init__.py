"""Models of the course, one module per model family; import the module you need, e.g.

    from defectlib.models.danet import build_danet
    from defectlib.models.cbam import CBAM
    from defectlib.models.dcn import DeformConv2d

Kept empty on purpose: importing ``defectlib.models`` loads no model code (each notebook pulls in
only what it uses).
"""
