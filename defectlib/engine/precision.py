"""Numeric precision and memory format of a training or prediction run.

Mixed precision runs the convolutions and matrix products of the forward pass in a 16-bit float
format while the weights, the optimizer state and the losses stay in fp32 (Micikevicius et al.,
"Mixed Precision Training", ICLR 2018). Two 16-bit formats:

- **bf16** (8 exponent bits, like fp32): no overflow, so no loss scaling. CPUs with native bf16
  instructions (AVX-512 BF16 or AMX) and recent GPUs run it at full speed.
- **fp16** (5 exponent bits): small gradients underflow, so the loss is multiplied by a scale
  before ``backward`` and the gradients divided by it before the step (``torch.amp.GradScaler``).

``precision="auto"`` picks what is fast and safe where the run is: bf16 on a CPU with native bf16,
fp32 on other CPUs (emulated bf16 is slower than fp32 there), and on CUDA bf16 where the GPU
supports it, else fp16 with a GradScaler.

**channels_last** stores a 4-D tensor as N, H, W, C: oneDNN's (CPU) and cuDNN's (tensor-core)
convolutions read it without reordering. On this course's 2-core AVX-512 machine a U-Net-ResNet34
training step was 3.3x faster with 2 threads + channels_last + bf16 than with 1 thread in fp32
(``benchmarks/bench_engine.py`` measures every notebook's model).
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU executes bf16 arithmetic in hardware (AVX-512 BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return True
    try:  # other systems: ask oneDNN (true also when bf16 is merely supported, so only as a fallback)
        return not flags and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """What a run does: autocast to ``dtype`` (None = plain fp32) and whether it scales the loss."""

    name: str                       # "fp32" | "bf16" | "fp16": what "auto" resolved to
    device_type: str
    dtype: torch.dtype | None
    scale_loss: bool                # fp16 only: GradScaler

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass's context: ``torch.autocast`` in 16-bit, nothing in fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type if self.device_type in ("cuda", "cpu") else "cuda",
                                    enabled=self.scale_loss)


def cuda_has_native_bf16(device: torch.device | str = "cuda") -> bool:
    """True on GPUs that compute in bf16 (compute capability 8.0 and later: Ampere, Ada, Hopper...).
    Not ``torch.cuda.is_bf16_supported()``, which also counts bf16 emulated by older cards (V100,
    T4): there bf16 is slower than fp16, so those get fp16 with a GradScaler."""
    return torch.cuda.get_device_capability(torch.device(device)) >= (8, 0)


def resolve_precision(precision: str, device: torch.device | str) -> Precision:
    """Turn ``"fp32" | "bf16" | "fp16" | "auto"`` into what runs on ``device`` (see module docstring)."""
    name = str(precision).lower()
    if name not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; choose one of {PRECISIONS}")
    device_type = torch.device(device).type
    if name == "auto":
        if device_type == "cuda":
            name = "bf16" if cuda_has_native_bf16(device) else "fp16"
        elif device_type == "cpu":
            name = "bf16" if cpu_has_native_bf16() else "fp32"
        else:  # mps and others: autocast support varies, stay exact
            name = "fp32"
    if name == "fp32":
        return Precision("fp32", device_type, None, False)
    return Precision(name, device_type, _DTYPES[name], name == "fp16")


def map_tensors(obj: Any, fn) -> Any:
    """``fn`` applied to every tensor inside nested lists, tuples, namedtuples and dicts."""
    if torch.is_tensor(obj):
        return fn(obj)
    if isinstance(obj, Mapping):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(map_tensors(v, fn) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    return obj


def to_channels_last(obj: Any) -> Any:
    """4-D floating tensors (also inside lists, tuples, dicts) in channels_last; the rest as is."""
    return map_tensors(obj, lambda t: t.contiguous(memory_format=torch.channels_last)
                       if t.dim() == 4 and t.is_floating_point() else t)


def to_float32(obj: Any) -> Any:
    """Floating tensors (also nested) back in fp32, for losses and metrics after a 16-bit forward."""
    return map_tensors(obj, lambda t: t.float() if t.is_floating_point() and t.dtype != torch.float32 else t)
