"""Datasets in their real on-disk formats, as torch Datasets in torchvision conventions."""
from .errors import (AnnotationError, CorruptImageError, DatasetError, DatasetNotFoundError,
                     EmptyDatasetError, MaskSizeError, MissingFileError, RLEError, SplitError)
from .folder import ImageMaskFolder, PairedMasks
from .mtd import MTD
from .neu_det import NEUDET, collate_detection, parse_voc
from .neu_seg import NEUSeg
from .nrsd_mn import NRSDMN
from .severstal import Severstal, rle_decode, rle_encode, write_submission
from .resolve import locate

__all__ = [
    "NEUDET", "Severstal", "NRSDMN", "NEUSeg", "MTD", "ImageMaskFolder", "PairedMasks",
    "rle_decode", "rle_encode", "write_submission", "parse_voc", "collate_detection", "locate",
    "DatasetError", "DatasetNotFoundError", "EmptyDatasetError", "MissingFileError",
    "CorruptImageError", "AnnotationError", "RLEError", "MaskSizeError", "SplitError",
]
