"""Helpers around :func:`defectlib.engine.fit`: moving batches, ready-made ``loss_fn`` s, ``predict``
and a validation-loss ``evaluate``."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch

from ..runtime import resolve_device
from .precision import map_tensors, resolve_precision, to_channels_last, to_float32
from .progress import tqdm

LossFn = Callable[[torch.nn.Module, Any, torch.device], Mapping[str, torch.Tensor]]


# ---------------------------------------------------------------------------------------- batches
def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors inside nested lists / tuples / namedtuples / dicts to ``device``."""
    return map_tensors(obj, lambda t: t.to(device, non_blocking=True))


def supervised_loss(criterion: Callable[[Any, Any], torch.Tensor]) -> LossFn:
    """``loss_fn`` for ``(inputs, targets)`` batches: ``{"loss": criterion(model(inputs), targets)}``.

    Under mixed precision the forward pass runs in bf16 / fp16 and the criterion in fp32: sums over
    a batch of pixels (Dice, Tversky) lose digits in a 16-bit float."""
    def loss_fn(model: torch.nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        x, y = to_device(batch[0], device), to_device(batch[1], device)
        out = model(x)
        with fp32_region(device):
            return {"loss": criterion(to_float32(out), y)}
    return loss_fn


def fp32_region(device: torch.device | str):
    """A block where autocast is off (losses and metrics after a 16-bit forward pass)."""
    return torch.autocast(device_type=torch.device(device).type, enabled=False)


def detection_loss(model: torch.nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
    """``loss_fn`` for torchvision detectors: ``model(images, targets)`` returns the loss terms."""
    images, targets = to_device(list(batch[0]), device), to_device(list(batch[1]), device)
    terms = model(images, targets)
    return {"loss": sum(terms.values()), **terms}


# ------------------------------------------------------------------------------------- inference
@torch.no_grad()
def predict(model: torch.nn.Module, loader: Iterable, device: str | torch.device = "auto",
            max_batches: int | None = None, forward: Callable | None = None, progress: bool = False,
            desc: str = "predict", precision: str = "fp32", channels_last: bool = False) -> Any:
    """Run ``model`` in eval mode without gradients over ``loader``; outputs come back on the CPU.

    ``forward(model, batch, device)`` defaults to ``model(batch[0])`` (the inputs of an
    ``(inputs, targets)`` batch; lists of images are moved element-wise, as detectors want).
    Tensor outputs are concatenated along dim 0; list outputs (one dict per image, detectors) are
    concatenated into one list. The model's train/eval flags are restored afterwards.
    ``precision`` / ``channels_last`` as in :class:`TrainConfig` (outputs come back in fp32).
    """
    device = resolve_device(device)
    numerics = resolve_precision(precision, device)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    outs: list[Any] = []
    try:
        total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
        if max_batches is not None and total is not None:
            total = min(total, max_batches)
        for i, batch in enumerate(tqdm(loader, total=total, desc=desc, disable=not progress, leave=False)):
            if max_batches is not None and i >= max_batches:
                break
            if channels_last:
                batch = to_channels_last(batch)
            with numerics.autocast():
                if forward is None:
                    x = batch[0] if isinstance(batch, (list, tuple)) else batch
                    out = model(to_device(list(x) if isinstance(x, tuple) else x, device))
                else:
                    out = forward(model, batch, device)
            # a blocking copy: non_blocking=True from a GPU returns before the data has arrived,
            # and torch.cat below could read the last batch half-copied
            outs.append(to_float32(map_tensors(out, lambda t: t.to("cpu", non_blocking=False))))
    finally:
        for m, flag in flags.items():
            m.train(flag)
    if outs and all(torch.is_tensor(o) for o in outs):
        return torch.cat(outs)
    if outs and all(isinstance(o, list) for o in outs):
        return [item for o in outs for item in o]
    return outs


def loss_evaluator(loader: Iterable, loss_fn: LossFn, device: str | torch.device = "auto",
                   max_batches: int | None = None, prefix: str = "val_") -> Callable[[torch.nn.Module], dict]:
    """An ``evaluate`` for :func:`fit`: mean of every loss term over ``loader`` (``val_loss``, ...)."""
    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        dev = resolve_device(device)
        sums: dict[str, float] = {}
        n = 0
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            for k, v in loss_fn(model, batch, dev).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
        return {prefix + k: v / max(n, 1) for k, v in sums.items()}
    return evaluate
