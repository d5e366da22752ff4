"""A first look at each dataset (notebook 00): open it by its folder name, pick samples spread over
it, defective ones first, and caption each with what it shows."""
from __future__ import annotations

import os

from .mtd import MTD
from .neu_det import NEUDET
from .neu_seg import NEUSeg
from .nrsd_mn import NRSDMN
from .severstal import Severstal

#: folder name -> how the gallery opens it (the training part where a dataset has splits)
OPENERS = {"neu-det": NEUDET, "neu-seg": lambda p: NEUSeg(p, split="training"), "mtd": MTD,
           "severstal": Severstal, "nrsd-mn": lambda p: NRSDMN(p, split="train")}


def open_dataset(name: str, path: str | os.PathLike):
    """The dataset in ``path`` read with the loader of ``name`` (a key of :data:`OPENERS`)."""
    if name not in OPENERS:
        raise KeyError(f"no dataset named {name!r}; known: {', '.join(OPENERS)}")
    return OPENERS[name](path)


def spread(ds, k: int) -> list[int]:
    """``k`` sample indices spread over ``ds``, defective ones first where the dataset knows
    which are (its ``defective`` flags): the first ``10 k`` of that order, every n-th."""
    order = list(range(len(ds)))
    if hasattr(ds, "defective"):
        order = [i for i in order if ds.defective[i]] + [i for i in order if not ds.defective[i]]
        order = order[: max(k * 10, k)]
    step = max(1, len(order) // k)
    return order[::step][:k]


def caption(name: str, ds, i: int, target) -> str:
    """Sample ``i``'s short id and the classes it shows."""
    short = str(ds.ids[i]).split("/")[-1][:18]
    if name == "neu-det":
        return f"{short}: {len(target['boxes'])} box(es)"
    if name == "neu-seg":
        return f"{short}: " + (", ".join(ds.CLASSES[k] for k in target.unique().tolist() if k) or "clean")
    if name == "mtd":
        return f"{short}: {ds.CLASSES[ds.labels[i]]}"
    if name == "severstal":
        return f"{short}: classes {', '.join(map(str, ds.labels[i])) or 'none (clean)'}"
    return short
