"""Data-parallel training: two CPU processes (gloo, loopback only) take the same step as one process
with the same global batch."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from defectlib.engine import distributed as D
from defectlib.engine.selftest import main as selftest, toy_data

ARGS = ["--selftest", "--epochs", "1", "--max-steps", "1", "--samples", "16", "--no-shuffle", "--no-dropout",
        "--warmup-iters", "0", "--lr", "0.5", "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_loader_gives_each_rank_its_shard():
    loader = DataLoader(toy_data(16), batch_size=4, shuffle=False)
    shards = [D.distributed_loader(loader, D.DistInfo(rank=r, world_size=2), seed=0) for r in (0, 1)]
    assert all(isinstance(s.sampler, DistributedSampler) and not s.sampler.shuffle for s in shards)
    firsts = [next(iter(s))[0] for s in shards]
    # rank r reads samples r, r+2, ...: together the first batches are the first 8 samples
    x = toy_data(16).tensors[0]
    assert torch.equal(firsts[0], x[0:8:2]) and torch.equal(firsts[1], x[1:8:2])
    shuffled = D.distributed_loader(DataLoader(toy_data(16), batch_size=4, shuffle=True), D.DistInfo(0, 2), 0)
    assert shuffled.sampler.shuffle
    assert D.distributed_loader(loader, D.DistInfo(), 0) is loader


def test_class_balanced_batches_shard_across_ranks():
    """Notebook 02's balanced batch samplers used to raise ValueError under torchrun; each rank
    now draws its own balanced batches, half as many per epoch on 2 ranks, and one process keeps
    the stream it always had."""
    from defectlib.data.sampling import ClassBalancedBatchSampler
    from defectlib.experiments.severstal import CropScheduleSampler
    labels = [i % 3 for i in range(30)]
    single = ClassBalancedBatchSampler(labels, 6, num_batches=5, seed=1)
    before = list(ClassBalancedBatchSampler(labels, 6, num_batches=5, seed=1))
    loader = DataLoader(toy_data(30), batch_sampler=single)
    shards = [D.distributed_loader(loader, D.DistInfo(rank=r, world_size=2), seed=0) for r in (0, 1)]
    batches = [list(s.batch_sampler) for s in shards]
    assert [len(b) for b in batches] == [3, 3] and batches[0] != batches[1]
    for b in batches:   # still balanced: two of each class in every batch of 6
        assert all(sorted(labels[i] for i in batch) == [0, 0, 1, 1, 2, 2] for batch in b)
    assert list(single) == before                       # the original is untouched
    assert len(next(iter(shards[0]))[0]) == 6
    crops = CropScheduleSampler(object(), labels, 6, 4, seed=0)
    assert crops.shard(1, 2).crops is crops.crops and len(crops.shard(1, 2)) == 2
    with pytest.raises(ValueError, match="rank 2"):
        single.shard(2, 2)

    class Other(torch.utils.data.Sampler):
        def __iter__(self):
            return iter([[0, 1]])

        def __len__(self):
            return 1
    with pytest.raises(ValueError, match="shard"):
        D.distributed_loader(DataLoader(toy_data(4), batch_sampler=Other()), D.DistInfo(0, 2), 0)


def test_synthetic_crops_differ_between_ranks(monkeypatch):
    """Notebook 04's crops are drawn from one stream that ignores the sample index: under torchrun
    every rank drew the same batch. The stream is now seeded with the rank (one process unchanged)."""
    from defectlib.experiments.synthetic import CropSet
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.rand(1, 40, 40, generator=g), (torch.rand(1, 40, 40, generator=g) > 0.9).float())]
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    alone = [CropSet(pairs, 16, 4, seed=3)[i][0] for i in range(4)]
    again = [CropSet(pairs, 16, 4, seed=3)[i][0] for i in range(4)]
    ranks = []
    for r in (0, 1):
        monkeypatch.setenv("RANK", str(r)); monkeypatch.setenv("WORLD_SIZE", "2")
        ds = CropSet(pairs, 16, 4, seed=3)
        ranks.append([ds[i][0] for i in range(4)])
    assert all(torch.equal(a, b) for a, b in zip(alone, again))
    assert not all(torch.equal(a, b) for a, b in zip(ranks[0], ranks[1]))


@pytest.mark.slow
def test_two_process_step_equals_single_process_global_batch(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2", OMP_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES="")
    if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only: works offline, whatever the hostname
    ddp_file = tmp_path / "ddp.pt"
    procs = [subprocess.Popen([sys.executable, "-m", "defectlib.engine", *ARGS, "--batch-size", "4",
                               "--save-params", str(ddp_file)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the two gloo processes did not finish in 120 s")
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)
    assert "world_size=2" in outs[0]

    single_file, half_file = tmp_path / "single.pt", tmp_path / "half.pt"
    assert selftest([*ARGS, "--batch-size", "8", "--save-params", str(single_file)]) == 0
    assert selftest([*ARGS, "--batch-size", "4", "--save-params", str(half_file)]) == 0
    ddp, single, half = (torch.load(f, weights_only=True) for f in (ddp_file, single_file, half_file))
    for k in single:  # 2 x 4 rows on 1 thread, gradients all-reduced, vs 8 rows here: other GEMM shapes and sums
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-5, atol=1e-6)
    # the check can fail: a step on only the first 4 samples lands somewhere else
    assert max(float((half[k] - single[k]).abs().max()) for k in single) > 1e-3


def test_selftest_backend_follows_the_device_not_the_node(monkeypatch):
    """On a GPU node ``--selftest --device cpu`` must join with gloo: NCCL has no CPU tensors."""
    import torch

    from defectlib.engine import distributed as D
    asked = []
    monkeypatch.setattr(D, "init_from_env", lambda backend=None: asked.append(backend) or D.info())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)             # a GPU node
    assert selftest([*ARGS, "--batch-size", "8", "--device", "cpu"]) == 0
    assert asked[0] == "gloo"                      # (fit asks again later: a no-op once a group exists)
