"""Helpers around :func:`defectlib.engine.fit`: moving batches, ready-made ``loss_fn`` s, ``predict``
and a validation-loss ``evaluate``."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch

from ..runtime import resolve_device
from .precision import map_tensors, resolve_precision, to_channels_last, to_float32
from ..progress import tqdm

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
            max_batches: int | None = None, forward: Callable | None = None, output: Callable | None = None,
            progress: bool = False, desc: str = "predict", precision: str = "fp32",
            channels_last: bool = False) -> Any:
    """The course's one inference loop: every evaluation runs its model(s) over a loader through it.

    ``model`` runs in eval mode without gradients; its train/eval flags are restored afterwards.
    Several models over the same batches (a gate and a segmenter, paper 001) go in one
    ``nn.ModuleDict``, so all their flags are handled. Per batch, up to ``max_batches``:

    1. ``channels_last``: 4-D float tensors of the batch in channels_last (as :class:`TrainConfig`);
    2. ``forward(model, batch, device)`` under ``precision``'s autocast (bf16 / fp16 / fp32, see
       :func:`~defectlib.engine.resolve_precision`); the default is ``model(batch[0])`` (the inputs
       of an ``(inputs, targets)`` batch, moved to ``device``; a tuple of images becomes a list,
       as detectors want);
    3. ``output(out, batch)``, outside autocast, chooses what to keep of the batch (e.g. a sigmoid,
       masks resized to each ground truth, the batch's targets); the default keeps ``out`` in fp32;
    4. what is kept is copied to the CPU with a blocking copy: a ``non_blocking`` copy from a GPU
       returns before the data has arrived, and the concatenation below could read the last batch
       half-copied.

    The kept values are gathered over batches: tensors concatenated along dim 0, lists (one item
    per image: detections, maps of different sizes) concatenated, tuples and dicts gathered field
    by field; anything else comes back as the list of per-batch values. ``torch.no_grad`` rather
    than ``inference_mode``: callers edit the outputs in place (``masks &= ...``), which inference
    tensors forbid. The model must already be on ``device`` (a clear ValueError otherwise).
    """
    device = resolve_device(device)
    if max_batches is not None and max_batches < 0:
        raise ValueError(f"max_batches={max_batches}: give a count >= 0, or None for every batch")
    weight = next(iter(model.parameters()), None)
    if weight is not None and weight.device.type != device.type:
        raise ValueError(f"predict: the model's weights are on {weight.device} but device={device}; "
                         f"move the model there first (model.to(device))")
    numerics = resolve_precision(precision, device)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    outs: list[Any] = []
    try:
        total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
        if max_batches is not None and total is not None:
            total = min(total, max_batches)
        # the bar wraps the loader lazily (engine.progress): with or without it, one iterator
        batches = tqdm(loader, total=total, desc=desc, leave=False) if progress else loader
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            if channels_last:
                batch = to_channels_last(batch)
            with numerics.autocast():
                out = _default_forward(model, batch, device) if forward is None else forward(model, batch, device)
            if output is None:
                outs.append(to_float32(map_tensors(out, _to_host)))
            else:
                outs.append(map_tensors(output(out, batch), _to_host))
    finally:
        for m, flag in flags.items():
            m.train(flag)
    return _gather(outs)


def _default_forward(model: torch.nn.Module, batch: Any, device: torch.device) -> Any:
    x = batch[0] if isinstance(batch, (list, tuple)) else batch
    return model(to_device(list(x) if isinstance(x, tuple) else x, device))


def _to_host(t: torch.Tensor) -> torch.Tensor:
    return t.to("cpu", non_blocking=False)


def _gather(outs: list[Any]) -> Any:
    """Per-batch values of :func:`predict` -> one value (see its docstring)."""
    if not outs:
        return outs
    if all(torch.is_tensor(o) for o in outs):
        return torch.cat(outs)
    if all(isinstance(o, list) for o in outs):
        return [item for o in outs for item in o]
    if all(isinstance(o, tuple) and len(o) == len(outs[0]) for o in outs):
        return tuple(_gather(list(field)) for field in zip(*outs))
    if all(isinstance(o, Mapping) and o.keys() == outs[0].keys() for o in outs):
        return {k: _gather([o[k] for o in outs]) for k in outs[0]}
    if all(o is None for o in outs):
        return None
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
