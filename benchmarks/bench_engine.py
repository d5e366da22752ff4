"""Benchmark: the overhead of ``defectlib.engine.fit`` over the hand-written PyTorch loop, one run.

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
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
