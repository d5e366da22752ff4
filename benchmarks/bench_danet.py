"""Benchmark: what DANet's additions cost, as ratios measured in one run (issue 5).

1. **Training step**: DANet (phase 5: ResNet-50-FPN + DCN in c3-c5 + CBAM in every bottleneck +
   focal loss) against the detector a user would otherwise pick, torchvision's stock
   ``fasterrcnn_resnet50_fpn``, both from scratch with the same input size, batch, RoI sampling
   and RPN settings, on the same NEU-DET-like images. Goal: ratio <= 1.3.
2. **Deformable convolution** forward + backward: ``defectlib.models.dcn.deform_conv2d``
   (grid_sample + one matmul) against ``torchvision.ops.deform_conv2d`` (the only other CPU
   implementation), 256 -> 256 channels at 50x50 (a c4 map of an 800 px image), random offsets.
   Goal on CPU: ratio >= 4. The outputs are checked to agree.

Each number is the median of ``--repeats`` timings, the two sides interleaved in one process, so
the machine's load hits both alike.

    OMP_NUM_THREADS=1 python benchmarks/bench_danet.py
    OMP_NUM_THREADS=1 python benchmarks/bench_danet.py --size 192 --batch 4 --rois 128 --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from defectlib.models.danet import build_danet, count_parameters
from defectlib.models.dcn import deform_conv2d


def fake_batch(n: int, size: int, seed: int = 0):
    """NEU-DET-like grey images with 1-4 boxes each (labels 1..6)."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(n):
        k = int(torch.randint(1, 5, (1,), generator=g))
        xy = torch.rand(k, 2, generator=g) * size * 0.6
        wh = 12 + torch.rand(k, 2, generator=g) * size * 0.4
        images.append(torch.rand(1, size, size, generator=g))
        targets.append({"boxes": torch.cat([xy, (xy + wh).clamp(max=size - 1)], 1),
                        "labels": torch.randint(1, 7, (k,), generator=g)})
    return images, targets


def step_timer(model, images, targets):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                          momentum=0.9)
    model.train()

    def run() -> float:
        t = time.perf_counter()
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t
    run()                                   # warm-up
    return run


def bench_detector(size: int, batch: int, rois: int, repeats: int) -> float:
    images, targets = fake_batch(batch, size)
    common = dict(min_size=size, max_size=size, box_batch_size_per_image=rois)
    torch.manual_seed(0)
    stock = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=7, **common)
    torch.manual_seed(0)
    danet = build_danet(5, num_classes=6, **common)
    runs = {"torchvision fasterrcnn_resnet50_fpn": step_timer(stock, images, targets),
            "DANet phase 5": step_timer(danet, images, targets)}
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            times[k].append(run())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n1. training step, {batch} images of {size}x{size}, {rois} sampled RoIs per image, "
          f"from scratch, median of {repeats}")
    for k, v in med.items():
        n = count_parameters(stock if k.startswith("torchvision") else danet)
        print(f"   {k:38s} {n / 1e6:6.2f} M params")
    ratio = med["DANet phase 5"] / med["torchvision fasterrcnn_resnet50_fpn"]
    print(f"   ratio DANet / stock = {ratio:.2f}x   (goal <= 1.3x)")
    return ratio


def bench_dcn(channels: int, hw: int, batch: int, repeats: int) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, hw, hw, generator=g, requires_grad=True)
    w = (0.01 * torch.randn(channels, channels, 3, 3, generator=g)).requires_grad_()
    off = (2 * torch.randn(batch, 18, hw, hw, generator=g)).requires_grad_()
    fns = {"torchvision.ops.deform_conv2d": torchvision.ops.deform_conv2d,
           "defectlib dcn.deform_conv2d": deform_conv2d}
    outs, times = {}, {k: [] for k in fns}
    for rep in range(repeats + 1):
        for k, fn in fns.items():
            t = time.perf_counter()
            out = fn(x, off, w, padding=1)
            out.square().mean().backward()
            if rep:                               # first round = warm-up
                times[k].append(time.perf_counter() - t)
            outs[k] = out.detach()
            x.grad = w.grad = off.grad = None
    a, b = outs.values()
    err = float((a - b).abs().max() / a.abs().max())
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["torchvision.ops.deform_conv2d"] / med["defectlib dcn.deform_conv2d"]
    print(f"\n2. deformable conv forward+backward, {batch}x{channels}x{hw}x{hw} -> {channels}, "
          f"median of {repeats} (outputs agree to {err:.1e})")
    print(f"   ratio torchvision / defectlib = {ratio:.2f}x   (goal >= 4x on CPU)")
    return ratio


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=192, help="input size (default 192)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rois", type=int, default=128, help="sampled RoIs per image")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dcn-channels", type=int, default=256)
    p.add_argument("--dcn-size", type=int, default=50)
    p.add_argument("--skip-detector", action="store_true")
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} thread(s)")
    if not args.skip_detector:
        bench_detector(args.size, args.batch, args.rois, args.repeats)
    bench_dcn(args.dcn_channels, args.dcn_size, 2, args.repeats)


if __name__ == "__main__":
    main()
