"""A toy problem that exercises the engine end to end, on one process or under torchrun.

    python -m defectlib.engine --selftest                       # one process, a few seconds
    torchrun --nproc_per_node=2 -m defectlib.engine --selftest  # two processes: NCCL on GPUs, else gloo
    torchrun --nproc_per_node=2 -m defectlib.engine --selftest --device cpu   # gloo, also on a GPU node

The toy: 2-D points from four Gaussian blobs, classified by a small MLP without batch norm
(so one data-parallel step equals one single-process step on the global batch exactly).
"""
from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from . import distributed as D
from .config import TrainConfig
from .helpers import predict, supervised_loss
from .loop import fit


def toy_data(n: int = 256, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    centres = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    x = centres[y] + 0.6 * torch.randn(n, 2, generator=g)
    return TensorDataset(x, y)


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4))


def accuracy_evaluator(dataset: TensorDataset, batch_size: int = 64, max_batches: int | None = None):
    loader = DataLoader(dataset, batch_size=batch_size)

    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        logits = predict(model, loader, device, max_batches=max_batches)
        y = dataset.tensors[1][: len(logits)]
        return {"val_loss": float(nn.functional.cross_entropy(logits, y)),
                "accuracy": float((logits.argmax(1) == y).float().mean())}
    return evaluate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m defectlib.engine", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--selftest", action="store_true", help="train the toy problem and check it learns")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16, help="per process")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--warmup-iters", type=int, default=5)
    ap.add_argument("--no-shuffle", action="store_true")
    ap.add_argument("--no-dropout", action="store_true", help="replace dropout by identity")
    ap.add_argument("--checkpoint-dir", default=None)
    ap.add_argument("--save-params", default=None, help="rank 0 writes the final state dict here")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--device", default="auto",
                    help="auto (each process's GPU under torchrun when CUDA is there, else the CPU), cpu, cuda")
    args = ap.parse_args(argv)
    if not args.selftest:
        ap.print_help()
        return 0
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    # the process group's backend follows the device: NCCL has no CPU tensors, gloo no fast GPU path
    di = D.init_from_env(backend="nccl" if device.type == "cuda" else "gloo")
    data = toy_data(args.samples)
    model = toy_model()
    if args.no_dropout:
        model[2] = nn.Identity()
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=not args.no_shuffle)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(epochs=args.epochs, optimizer="sgd", lr=args.lr, momentum=0.9, schedule="multistep",
                          milestones=(max(1, args.epochs - 1),), warmup_iters=args.warmup_iters, grad_clip=10.0,
                          max_steps=args.max_steps, checkpoint_dir=args.checkpoint_dir or tmp,
                          progress=not args.quiet)
        history = fit(model, loader, cfg, loss_fn=supervised_loss(nn.functional.cross_entropy), device=device,
                      evaluate=accuracy_evaluator(data))
    ok = True
    if di.is_main:
        acc = history.last.get("accuracy", float("nan"))
        print(f"world_size={di.world_size} epochs={len(history.epochs)} steps={history.last['step']} "
              f"loss={history.last['loss']:.4f} accuracy={acc:.3f}")
        if args.save_params:
            torch.save(model.state_dict(), args.save_params)
        if args.max_steps is None:
            ok = acc > 0.8
            print("selftest", "passed" if ok else "FAILED (accuracy <= 0.8)")
    D.barrier(di)
    if di.enabled:
        torch.distributed.destroy_process_group()
    return 0 if ok else 1
