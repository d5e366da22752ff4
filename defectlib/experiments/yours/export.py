"""Notebook 05's model as it leaves the course: one prediction pipeline, an exported file, and the
model read back from it (what ``defectlib predict`` runs).

**One pipeline** (:func:`probability_maps`), used by the notebook's evaluation and by the exported
model alike, so that the masks the notebook scores are the masks a user gets: the grey image in
[0, 1] (:func:`defectlib.data.io.read_gray`, ``/ 255``), resized to ``input_size`` x ``input_size``
(bilinear, antialiased: notebook 03's evaluation), the model in fp32, one image at a time, the
sigmoid of its first logit map resized back to the image's own size (bilinear), and a defect
wherever the probability is at least the threshold chosen on the validation images. One image at
a time because that is how a line inspects, and because a convolution's last bits can depend on
the other images of its batch (measured here: up to 5e-6 between batch 8 and batch 1), which
could flip a pixel that sits on the threshold.

**The export** (:func:`export_model`): a folder with ``weights.pt`` (the state dict, to fine-tune
or rebuild the model with :func:`defectlib.experiments.yours.recipe.build_model`), ``model.pt2``
(a ``torch.export`` program of the model and its first-map selection at 1 x 1 x S x S: it runs
without defectlib's model code, ``torch.export.load(path).module()``) and ``model.json`` (the
preprocessing, the threshold, what the model was trained and tested on). :class:`Segmenter` reads
the folder back and predicts through the same pipeline.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.errors import MissingFileError
from ...engine import predict

FORMAT = "defectlib.segmenter/1"
PROGRAM, WEIGHTS, SPEC = "model.pt2", "weights.pt", "model.json"


class FirstMap(nn.Module):
    """``model``'s first logit map: OCINet returns S^1..S^4 (deep supervision), the others one map."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (list, tuple)) else out


def resize_in(image: torch.Tensor, size: int) -> torch.Tensor:
    """A grey image ``[1, H, W]`` in [0, 1] as the model's input ``[1, 1, size, size]``."""
    return F.interpolate(image[None].float(), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


def _back(out: torch.Tensor, batch) -> list[torch.Tensor]:
    """The probability map of a one-image batch at the image's own size ``batch[1]``."""
    logits = out[0] if isinstance(out, (list, tuple)) else out
    prob = torch.sigmoid(logits.float())
    return [F.interpolate(prob, size=tuple(batch[1]), mode="bilinear", align_corners=False)[0, 0]]


def probability_maps(model: nn.Module, images: Iterable[torch.Tensor], size: int, device="cpu",
                     chunk: int = 16) -> Iterator[np.ndarray]:
    """Defect probabilities ``float32 [H, W]`` of each grey image ``[1, H, W]`` (module docstring),
    one image per batch of :func:`defectlib.engine.predict`, in fp32, ``chunk`` images per call."""
    pending = []
    for image in images:
        pending.append((resize_in(image, size), tuple(image.shape[-2:])))
        if len(pending) == chunk:
            yield from _run(model, pending, device)
            pending = []
    if pending:
        yield from _run(model, pending, device)


def _run(model, batches, device) -> Iterator[np.ndarray]:
    for p in predict(model, batches, device, output=_back, precision="fp32"):
        yield p.numpy()


# --- the exported folder ---------------------------------------------------------------------------
def export_model(model: nn.Module, out, *, name: str, label: str, input_size: int, threshold: float,
                 bit_depth: int | None = None, info: dict | None = None) -> Path:
    """Write ``weights.pt``, ``model.pt2`` and ``model.json`` of ``model`` (a key ``name`` of the
    recipe's models, shown as ``label``) into the folder ``out``; returns the JSON's path.
    ``info``: what else the JSON should say (data, test scores...)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        program = torch.export.export(FirstMap(model), (torch.zeros(1, 1, input_size, input_size),))
    finally:
        for m, flag in flags.items():
            m.train(flag)
    torch.export.save(program, out / PROGRAM)
    torch.save(model.state_dict(), out / WEIGHTS)
    spec = {"format": FORMAT, "model": name, "label": label, "input_size": int(input_size),
            "threshold": float(threshold), "bit_depth": bit_depth, "program": PROGRAM, "weights": WEIGHTS,
            "preprocessing": f"grey levels / 255 (defectlib.data.io.read_gray), resized to {input_size}x"
                             f"{input_size} (bilinear, antialiased), one image per batch, fp32",
            "postprocessing": "sigmoid of the first logit map, resized back to the image's size (bilinear); "
                              "a defect where the probability >= threshold",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(info or {})}
    (out / SPEC).write_text(json.dumps(spec, indent=1, default=str))
    return out / SPEC


class _Program(nn.Module):
    """A loaded ``torch.export`` program behind a plain module: the program itself accepts no
    ``eval()`` (it was exported in eval mode), so it is kept out of the module tree."""

    def __init__(self, program):
        super().__init__()
        self.__dict__["program"] = program

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


class Segmenter:
    """An exported model read back: ``Segmenter.load(folder or model.json)``; :meth:`probabilities`
    and :meth:`mask` run :func:`probability_maps` with the exported program and the JSON's
    input size and threshold (``threshold=`` overrides it)."""

    def __init__(self, spec: dict, program, threshold: float | None = None, device="cpu"):
        self.spec, self.device = spec, torch.device(device)
        self.module = _Program(program.to(self.device) if self.device.type != "cpu" else program)
        self.input_size = int(spec["input_size"])
        self.threshold = float(spec["threshold"] if threshold is None else threshold)
        self.bit_depth = spec.get("bit_depth")

    @classmethod
    def load(cls, path, threshold: float | None = None, device="cpu") -> "Segmenter":
        path = Path(path).expanduser()
        spec_path = path / SPEC if path.is_dir() else path
        if not spec_path.is_file():
            raise MissingFileError(spec_path, f"no exported model here (notebook 05 writes {SPEC}, {PROGRAM} "
                                              f"and {WEIGHTS} into the folder it exports to)")
        try:
            spec = json.loads(spec_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{spec_path}: not a model description ({exc})") from None
        if spec.get("format") != FORMAT:
            raise ValueError(f"{spec_path}: format {spec.get('format')!r}, expected {FORMAT!r}")
        program_path = spec_path.parent / spec["program"]
        if not program_path.is_file():
            raise MissingFileError(program_path, f"the exported program {spec_path.name} names is missing")
        return cls(spec, torch.export.load(program_path).module(), threshold, device)

    def probabilities(self, images: Iterable[torch.Tensor]) -> Iterator[np.ndarray]:
        return probability_maps(self.module, images, self.input_size, self.device)

    def mask(self, prob: np.ndarray) -> np.ndarray:
        return prob >= self.threshold
