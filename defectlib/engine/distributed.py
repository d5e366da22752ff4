"""Data-parallel training on several GPUs or machines with torch's own machinery.

Launch any script that calls :func:`defectlib.engine.fit` with ``torchrun``; torchrun sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` and ``fit`` then:

1. joins the process group (``nccl`` on CUDA, ``gloo`` on CPU) - :func:`init_from_env`;
2. wraps the model in ``DistributedDataParallel``, which averages gradients across processes
   after every backward pass, so one step equals one step on the global batch
   ``world_size * batch_size`` (for losses that are means over the batch);
3. rebuilds the training loader around a ``DistributedSampler`` so each process reads its own
   shard, reshuffled every epoch with ``set_epoch`` - :func:`distributed_loader`;
4. lets only rank 0 show progress, evaluate and write checkpoints; the others wait for it.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def info() -> DistInfo:
    """Rank and world size of this process (1 process when no group is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def launched() -> DistInfo:
    """Rank and world size as torchrun's environment gives them, before any process group exists
    (datasets built before :func:`~defectlib.engine.fit` use it to draw per-rank random streams)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): guard plots, result files and prints with it."""
    return info().is_main


def init_from_env(backend: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment variables; no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and dist.is_available() and not dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        # rank 0 evaluates alone while the others wait (in a barrier or the next DDP step): a long
        # evaluation must not trip the collective watchdog (NCCL's default: 10 minutes)
        timeout = dt.timedelta(seconds=float(os.environ.get("DEFECTLIB_DIST_TIMEOUT_S", 4 * 3600)))
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    return info()


def device_for(di: DistInfo, device: torch.device) -> torch.device:
    """Under several processes each one drives the GPU of its ``LOCAL_RANK``."""
    if di.enabled and device.type == "cuda":
        return torch.device("cuda", di.local_rank)
    return device


def wrap_model(model: torch.nn.Module, di: DistInfo, device: torch.device, sync_bn: bool = False,
               find_unused_parameters: bool = False) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when several processes run, the model itself otherwise.

    ``sync_bn`` converts BatchNorm layers to ``SyncBatchNorm`` in place (CUDA only), so that small
    per-GPU batches still normalise with the statistics of the global batch.
    """
    if not di.enabled:
        return model
    if device.type == "cuda":
        if sync_bn:
            converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            if converted is not model:  # the model itself was a BatchNorm layer
                raise ValueError("sync_bn needs a model that contains BatchNorm layers, not one")
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index], output_device=device.index,
                                                         find_unused_parameters=find_unused_parameters)
    return torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)


def machine_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def loader_workers(num_workers: int, di: DistInfo) -> int:
    """The data-loader worker processes each process starts: ``num_workers`` in one process; under
    torchrun at most this machine's CPUs shared out among its processes (``LOCAL_WORLD_SIZE`` of
    them): ``num_workers=4`` gives 4 workers each on a 4-GPU node with 16 or more cores, none on a
    2-core machine rehearsing with 4 CPU processes. Each worker is a fork of its process: on the CPU,
    where the activations live in that process's memory, 4 processes x 4 workers of the paper
    profile's DANet held more than 24 GiB and were killed; on so few cores they only competed with
    the training for them."""
    if not di.enabled or num_workers <= 0:
        return num_workers
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", di.world_size)))
    return min(num_workers, machine_cpus() // local)


def distributed_loader(loader: DataLoader, di: DistInfo, seed: int = 0) -> DataLoader:
    """The same loader with a ``DistributedSampler`` (shuffled iff the original shuffled); a batch
    sampler that knows how to ``shard(rank, num_replicas)`` itself (the class-balanced samplers of
    notebook 02) is sharded instead. Its workers: :func:`loader_workers` (no more than the
    machine's CPUs shared out among the processes on it)."""
    if not di.enabled or isinstance(loader.sampler, DistributedSampler):
        return loader
    custom = loader.batch_sampler is not None and type(loader.batch_sampler) is not BatchSampler
    if custom and hasattr(loader.batch_sampler, "shard"):
        return _rebuild(loader, di, batch_sampler=loader.batch_sampler.shard(di.rank, di.world_size))
    if custom:
        raise ValueError(f"cannot shard a loader with a custom batch sampler "
                         f"({type(loader.batch_sampler).__name__}) across processes; give it a "
                         "shard(rank, num_replicas) method or build it with a DistributedSampler yourself")
    sampler = DistributedSampler(loader.dataset, num_replicas=di.world_size, rank=di.rank,
                                 shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
                                 drop_last=loader.drop_last)
    return _rebuild(loader, di, batch_size=loader.batch_size, sampler=sampler, drop_last=loader.drop_last)


def _rebuild(loader: DataLoader, di: DistInfo | None = None, **sampling: Any) -> DataLoader:
    """``loader`` again with other sampling arguments, everything else (collate, pinning,
    generator, the workers' settings) kept; under torchrun (``di``) no more workers than
    :func:`loader_workers` allows."""
    workers = loader_workers(loader.num_workers, di) if di is not None else loader.num_workers
    kwargs: dict[str, Any] = dict(num_workers=workers, collate_fn=loader.collate_fn,
                                  pin_memory=loader.pin_memory, timeout=loader.timeout if workers else 0,
                                  worker_init_fn=loader.worker_init_fn, generator=loader.generator, **sampling)
    if workers > 0:
        kwargs.update(prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers,
                      multiprocessing_context=loader.multiprocessing_context)
    return DataLoader(loader.dataset, **kwargs)


def mean_across(values: dict[str, float], di: DistInfo) -> dict[str, float]:
    """Average a dict of floats over all processes (identity for one process)."""
    if not di.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return {k: float(v) / di.world_size for k, v in zip(keys, t.tolist())}


def broadcast(obj: Any, di: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s python object on every process."""
    if not di.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_weights(model: torch.nn.Module, di: DistInfo, src: int = 0) -> torch.nn.Module:
    """Every parameter and buffer of ``model`` set, in place, to rank ``src``'s: after a step only
    one process took (restoring rank 0's ``best.pt``), the copies agree again. Every rank calls it."""
    if di.enabled:
        with torch.no_grad():
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=src)
    return model


def barrier(di: DistInfo) -> None:
    if di.enabled:
        dist.barrier()
