"""Device choice, seeding and which machine computed a number, shared by every notebook, the engine
and the tests."""
from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``. A
    CUDA device with an index (``cuda:1``) also becomes the process's current device
    (``torch.cuda.set_device``), so that pinned-memory threads, cuDNN handles and stray
    allocations land on it rather than opening a context on GPU 0."""
    if not isinstance(device, torch.device):
        if device == "auto":
            return _auto_device()
        device = torch.device(device)
    if device.type == "cuda" and device.index is not None and torch.cuda.is_available():
        torch.cuda.set_device(device.index)
    return device


def _auto_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


#: "1" / "0": deterministic or fast kernels for a whole run (``defectlib run --deterministic`` / ``--fast``)
DETERMINISTIC_ENV = "DEFECTLIB_DETERMINISTIC"


def deterministic_default(device: str | torch.device | None = None) -> bool:
    """Deterministic kernels or fast ones, when nobody said: ``$DEFECTLIB_DETERMINISTIC`` ("1" / "0")
    if the run set it, else deterministic on a CPU (a CPU run gives the same numbers for the same
    seed) and fast on a GPU (cuDNN autotuning, TF32). ``device`` None: the CPU unless CUDA is visible."""
    flag = os.environ.get(DETERMINISTIC_ENV, "").strip()
    if flag in ("0", "1"):
        return flag == "1"
    if device is None:
        return not torch.cuda.is_available()
    return torch.device(device).type != "cuda"


def seed_everything(seed: int, deterministic: bool | None = None) -> None:
    """Seed python, numpy and torch, and choose deterministic kernels or fast ones
    (:func:`set_deterministic`; ``deterministic=None``: :func:`deterministic_default`)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    set_deterministic(deterministic_default() if deterministic is None else deterministic)


def set_deterministic(flag: bool) -> None:
    """Deterministic kernels (``flag=True``: CPU runs, reproducible to the bit) or the fastest ones
    (``False``: GPU runs: cuDNN autotuning, TF32 matrix multiplies on Ampere and later). It sets
    both ways, so a GPU training run after a call with ``True`` in the same kernel is not left with
    deterministic cuDNN, NaN-filled ``torch.empty`` and warnings for the ops that have no
    deterministic CUDA kernel (bilinear upsampling, adaptive pooling, RoIAlign backward)."""
    flag = bool(flag)
    torch.use_deterministic_algorithms(flag, warn_only=True)
    torch.backends.cudnn.deterministic = flag
    torch.backends.cudnn.benchmark = not flag
    torch.backends.cuda.matmul.allow_tf32 = not flag
    torch.backends.cudnn.allow_tf32 = not flag


def pin_memory(wanted: bool) -> bool:
    """DataLoader ``pin_memory``: what a profile asks for, where there is a GPU to copy to (on a
    CPU-only machine torch would only warn that it cannot)."""
    return bool(wanted) and torch.cuda.is_available()


# --- which CPU computed a number --------------------------------------------------------------------
#: instruction sets that change which kernels run, and so the last bits of float results
NUMERIC_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
#: environment variables that narrow the kernels torch, oneDNN and MKL choose
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
              "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def _cpuinfo(path: str = "/proc/cpuinfo") -> dict:
    """Model name, vendor and flags of the first processor in ``/proc/cpuinfo`` (Linux); {} elsewhere."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return {}
    info: dict = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break  # the first processor is enough: every core of a machine is of one kind
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_kind(vendor: str, flags) -> str:
    """The class of CPU whose kernels produced a number: vendor and the widest numeric instruction
    set (``Intel AMX``, ``AMD AVX-512 BF16``, ``Intel AVX-512``, ``AMD AVX2``, ``arm64``...). Two runs
    of one kind and thread count give bit-identical numbers for the same seed; two kinds need not
    (another GEMM / convolution kernel rounds differently), and differ by about the seed spread."""
    flags = set(flags)
    vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor or "")
    if "amx_bf16" in flags:
        isa = "AMX"
    elif "avx512_bf16" in flags:
        isa = "AVX-512 BF16"
    elif "avx512f" in flags:
        isa = "AVX-512"
    elif "avx2" in flags:
        isa = "AVX2"
    else:
        isa = platform.machine() or "unknown"
    return f"{vendor} {isa}".strip()


def _torch_build() -> dict:
    """oneDNN and MKL versions torch was built with (from ``torch.__config__.show()``)."""
    import re
    try:
        text = torch.__config__.show()
    except Exception:  # noqa: BLE001 - a describing function never stops a run
        return {}
    found = {}
    onednn = re.search(r"(?:oneDNN|MKL-DNN)\s+v?([\d.]+)", text)
    mkl = re.search(r"Math Kernel Library Version\s+([\d.]+)", text)
    if onednn:
        found["onednn"] = onednn.group(1)
    if mkl:
        found["mkl"] = mkl.group(1)
    return found


def machine(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """What decides the last bits of a CPU run's numbers: the CPU model, its kind
    (:func:`cpu_kind`), the numeric instruction sets it has, the kernels torch dispatches to
    (``torch.backends.cpu.get_cpu_capability()``, narrowed by ``ATEN_CPU_CAPABILITY``), torch,
    oneDNN and MKL versions, the thread count, and any environment variable narrowing the kernels.
    Recorded in every ``results.json``; :mod:`defectlib.course.reproduce` says when two runs differ in it."""
    info = _cpuinfo(cpuinfo)
    flags = set(info.get("flags", "").split())
    model = info.get("model name") or platform.processor() or platform.machine() or "unknown"
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        capability = "unknown"
    return {"cpu": model, "kind": cpu_kind(info.get("vendor_id", ""), flags),
            "flags": [f for f in NUMERIC_FLAGS if f in flags], "aten_capability": capability,
            "torch": torch.__version__, **_torch_build(), "threads": torch.get_num_threads(),
            "kernel_env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}}


def machine_line(m: dict | None) -> str:
    """One line for a report: ``AMD EPYC (AMD AVX-512 BF16: avx2 avx512f avx512_bf16), torch
    2.14.1, oneDNN 3.7.1, ATen AVX512, 2 threads``."""
    if not m:
        return "not recorded (a run from before results named their CPU)"
    parts = [f"{m.get('cpu', '?')} ({m.get('kind', '?')}: {' '.join(m.get('flags', [])) or 'none'})",
             f"torch {m.get('torch', '?')}"]
    parts += [f"{name} {m[k]}" for k, name in (("onednn", "oneDNN"), ("mkl", "MKL")) if m.get(k)]
    parts += [f"ATen {m.get('aten_capability', '?')}", f"{m.get('threads', '?')} threads"]
    if m.get("kernel_env"):
        parts.append(" ".join(f"{k}={v}" for k, v in m["kernel_env"].items()))
    return ", ".join(parts)
