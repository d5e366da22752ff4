"""Errors raised by the dataset readers.

Every problem with a dataset on disk raises one :class:`DatasetError` subclass whose message names
the offending file and says what is wrong with it, e.g.::

    AnnotationError: /data/neu-det/ANNOTATIONS/crazing_7.xml: box 2 (xmin=180, xmax=230) lies
    outside the 200x200 image

``defectlib data check`` collects these instead of stopping at the first one.
"""
from __future__ import annotations

import os


class DatasetError(Exception):
    """Base class: a problem with a dataset file or folder. ``.path`` and ``.problem`` are kept."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset folder (or a required sub-folder) does not exist."""


class EmptyDatasetError(DatasetError):
    """The folder exists but holds no samples."""


class MissingFileError(DatasetError, FileNotFoundError):
    """An image has no mask / annotation, or an annotation / CSV row has no image."""


class CorruptImageError(DatasetError):
    """An image or mask file cannot be decoded (truncated, not an image, zero bytes)."""


class AnnotationError(DatasetError):
    """An annotation file is malformed: unknown class, missing <size>, box outside the image."""


class RLEError(DatasetError, ValueError):
    """A run-length encoding is invalid: odd count, unsorted or overlapping runs, runs past the image."""


class MaskSizeError(DatasetError):
    """A mask's size differs from its image's size."""


class ImageEncodingError(DatasetError, ValueError):
    """An image's stored values fit no rule: a 16-bit value above ``bit_depth``, a float image
    outside [0, 1] (see :mod:`defectlib.data.io`)."""


class MaskEncodingError(DatasetError, ValueError):
    """A mask's stored values fit no rule, or more than one (see :mod:`defectlib.data.masks`)."""


class DuplicateFileError(DatasetError, ValueError):
    """Two files give the same sample id (``a.png`` and ``a.jpg``): which one is meant is unknown."""


class SplitError(DatasetError):
    """A split list names an unknown id, or a split is impossible as asked."""


__all__ = [
    "DatasetError", "DatasetNotFoundError", "EmptyDatasetError", "MissingFileError",
    "CorruptImageError", "AnnotationError", "RLEError", "MaskSizeError", "SplitError",
    "MaskEncodingError", "DuplicateFileError", "ImageEncodingError",
]
