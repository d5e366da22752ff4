"""Benchmarks of the engine, each measured in one run: ``overhead`` and ``numerics``.

``numerics``: one training step (forward, fp32 loss, backward, optimizer step) of each notebook's
main model at its cpu-profile size, in every setting of threads (1 / all) x precision (fp32 /
bf16 autocast) x memory format (contiguous / channels_last), as a ratio to the step time with one
thread, fp32, contiguous (median of ``--repeats`` after a warm-up step, settings interleaved):

    python benchmarks/bench_engine.py numerics [--models unet04,ocinet03,unet02,danet01]

``overhead`` (the default): the overhead of ``defectlib.engine.fit`` over the hand-written loop.

Case: a small conv net (3 conv-BN-ReLU blocks, global pooling, 6 classes, NEU-DET-like 1x64x64
inputs, batch 8), SGD with momentum, ``--steps`` (60) steps on CPU. The hand-written loop is the
one a user would otherwise write (zero_grad, backward, step). ``fit`` runs with what the notebooks
use: warm-up, gradient clipping, per-step history, a text progress bar, and a checkpoint at the end
of every epoch. Prints the ratio fit time / hand-written time (median of ``--repeats``, interleaved;
1.00 = no overhead) and checks both reach the same weights when the extras are switched off.

    OMP_NUM_THREADS=1 python benchmarks/bench_engine.py
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from defectlib.engine import TrainConfig, fit, supervised_loss


def net():
    torch.manual_seed(0)
    block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]  # noqa: E731
    return nn.Sequential(*block(1, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 6))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="overhead", choices=("overhead", "numerics"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default=",".join(CASES))
    args = ap.parse_args()
    if args.what == "numerics":
        return numerics(args.models.split(","), args.repeats)
    g = torch.Generator().manual_seed(0)
    n = 8 * args.steps // 2
    ds = TensorDataset(torch.rand(n, 1, 64, 64, generator=g), torch.randint(0, 6, (n,), generator=g))
    loader = DataLoader(ds, batch_size=8)  # 2 epochs of steps/2

    def handwritten(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        model.train()
        for _ in range(2):
            for x, y in loader:
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def engine(model, extras=True):
        with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as null:
            with contextlib.redirect_stderr(null), contextlib.redirect_stdout(null):
                cfg = TrainConfig(epochs=2, lr=0.01, momentum=0.9, warmup_iters=10 if extras else 0,
                                  grad_clip=10.0 if extras else None, checkpoint_dir=tmp if extras else None,
                                  progress=extras)
                fit(model, loader, cfg, loss_fn=supervised_loss(nn.functional.cross_entropy), device="cpu")

    a, b = net(), net()
    handwritten(a)
    engine(b, extras=False)
    diff = max(float((p - q).abs().max()) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    times = {"hand-written loop": [], "defectlib fit": []}
    for _ in range(args.repeats):
        for name, f in (("hand-written loop", handwritten), ("defectlib fit", engine)):
            m = net()
            t = time.perf_counter()
            f(m)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.steps} steps, batch 8, 1x64x64, torch threads={torch.get_num_threads()}")
    for k, v in med.items():
        print(f"  {k:18s} median {v:.3f} s over {args.repeats} runs")
    print(f"ratio fit / hand-written: {med['defectlib fit'] / med['hand-written loop']:.3f} "
          f"(warm-up, clipping, history, progress bar, 2 checkpoints included)")
    print(f"same weights without the extras: max |difference| = {diff:.2e}")


# ------------------------------------------------------------------------------------- numerics
def _unet(classes, size, batch):
    from defectlib.models.unet import build_unet
    x = torch.randn(batch, 1, size, size)
    y = (torch.rand(batch, classes, size, size) > 0.9).float()
    return build_unet("resnet34", num_classes=classes, in_channels=1), x, y, \
        lambda out, t: nn.functional.binary_cross_entropy_with_logits(out, t)


def _ocinet():
    from defectlib.losses import DeepSupervisionLoss
    from defectlib.models.ocinet import build_ocinet
    x, y = torch.randn(8, 1, 224, 224), (torch.rand(8, 1, 224, 224) > 0.9).float()
    return build_ocinet("full"), x, y, DeepSupervisionLoss((1.0, 1.0, 0.5, 0.25))


def _danet():
    from defectlib import profiles
    from defectlib.experiments import danet
    model = danet.build_model(profiles.get("01", "cpu"), 5, num_classes=6)   # the notebook's phase 5
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 200, 200, generator=g) for _ in range(4)]
    targets = [{"boxes": torch.tensor([[20.0, 30.0, 90.0, 120.0], [100.0, 40.0, 180.0, 70.0]]),
                "labels": torch.tensor([1, 3])} for _ in range(4)]
    return model, images, targets, None


# name -> (what it is, builder): each notebook's main model at its cpu-profile size
CASES = {
    "unet04": ("NB04 U-Net-ResNet34, 16 crops 96x96", lambda: _unet(1, 96, 16)),
    "ocinet03": ("NB03 OCINet, 8 images 224x224, deep supervision", _ocinet),
    "unet02": ("NB02 U-Net-ResNet34, 4 classes, 16 images 200x200", lambda: _unet(4, 200, 16)),
    "danet01": ("NB01 DANet phase 5, 1/4 width, 4 images 192 px", _danet),
}


def _step_time(case, threads, precision, channels_last, repeats):
    from defectlib.engine.precision import resolve_precision, to_channels_last, to_float32
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, x, y, loss_fn = CASES[case][1]()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = to_channels_last(x)
    numerics = resolve_precision(precision, "cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for k in range(repeats + 1):
        t = time.perf_counter()
        with numerics.autocast():
            out = model(x, y) if loss_fn is None else model(x)
        loss = sum(out.values()) if loss_fn is None else loss_fn(to_float32(out), y)
        opt.zero_grad()
        loss.float().backward()
        opt.step()
        if k:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def numerics(cases, repeats):
    cores = os.cpu_count() or 1
    settings = [(t, p, cl) for t in (1, cores) for p in ("fp32", "bf16") for cl in (False, True)]
    from defectlib.engine.precision import cpu_has_native_bf16
    print(f"{cores} cores; native bf16: {cpu_has_native_bf16()}; median of {repeats} steps after a warm-up; "
          f"ratio = step time at 1 thread, fp32, contiguous / step time in the setting (higher is faster)")
    for case in cases:
        base = None
        print(f"\n{CASES[case][0]}")
        print("| threads | precision | memory | step (ms) | speed-up |\n|---:|---|---|---:|---:|")
        for threads, prec, cl in settings:
            t = _step_time(case, threads, prec, cl, repeats)
            base = base or t
            print(f"| {threads} | {prec} | {'channels_last' if cl else 'contiguous'} | {1e3 * t:.0f} | "
                  f"{base / t:.2f}x |", flush=True)
    torch.set_num_threads(cores)


if __name__ == "__main__":
    main()
