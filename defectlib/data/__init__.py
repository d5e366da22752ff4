"""Datasets in their real on-disk formats, as torch Datasets in torchvision conventions.

Where a dataset is (the real folder, else its generated stand-in) is :func:`defectlib.synth.locate`:
the stand-ins are written by :mod:`defectlib.synth`, which sits above this package."""
from .errors import (AnnotationError, CorruptImageError, DatasetError, DatasetNotFoundError,
                     EmptyDatasetError, MaskSizeError, MissingFileError, RLEError, SplitError)
from .folder import ImageMaskFolder, PairedMasks
from .mtd import MTD
from .neu_det import NEUDET, collate_detection, parse_voc
from .neu_seg import NEUSeg
from .nrsd_mn import NRSDMN
from .severstal import Severstal, rle_decode, rle_encode, write_submission

__all__ = [
    "NEUDET", "Severstal", "NRSDMN", "NEUSeg", "MTD", "ImageMaskFolder", "PairedMasks",
    "rle_decode", "rle_encode", "write_submission", "parse_voc", "collate_detection",
    "DatasetError", "DatasetNotFoundError", "EmptyDatasetError", "MissingFileError",
    "CorruptImageError", "AnnotationError", "RLEError", "MaskSizeError", "SplitError",
]
