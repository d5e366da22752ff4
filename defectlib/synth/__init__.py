"""Generated stand-ins: procedural steel textures, defect primitives with exact masks, writers that
store small datasets in the real on-disk formats (NEU-DET, Severstal, NRSD-MN, NEU-Seg, MTD), and
:func:`locate`: where a dataset is, the real folder when the user has one, else its stand-in.

The 3-D renderer of paper 004 lives in its own modules here (added with notebook 04).
"""
from .standins import locate, standin_dir
from .defects import PRIMITIVES, crazing, inclusion, patch, pit, rolled_in_scale, scratch
from .textures import fractal_noise, rail_texture, steel_texture
from .writers import (STANDINS, write_mtd, write_neu_det, write_neu_seg, write_nrsd_mn, write_severstal,
                      write_standin)

__all__ = [
    "fractal_noise", "steel_texture", "rail_texture", "scratch", "pit", "inclusion", "patch",
    "crazing", "rolled_in_scale", "PRIMITIVES", "write_neu_det", "write_severstal", "write_nrsd_mn",
    "write_neu_seg", "write_mtd", "write_standin", "STANDINS", "locate", "standin_dir",
]
