"""Data-parallel training under ``torchrun``: process group, DDP wrapper, batch sharding.

``torchrun --nproc_per_node=N ...`` starts N copies of the program with ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment. :func:`init` reads them and
joins the process group (``gloo`` on CPU, ``nccl`` when CUDA is available); without them it returns a
single-process context and nothing here does anything, so the same program runs either way.

Sharding. Every rank builds the same global batches in the same order (they share the seed and the
per-epoch generator); :func:`shard_batch` gives rank ``r`` the ``r``-th contiguous slice of each global
batch (sizes differ by at most one) and the slice's weight ``n_r / n``. DistributedDataParallel
averages gradients over the ``W`` ranks, so :func:`~matbackprop.train.loop.fit` back-propagates
``loss_r * W * n_r / n`` where ``loss_r`` is the mean over the rank's slice; the average of the rank
gradients is then ``sum_r (n_r / n) grad loss_r``, the gradient of the mean over the whole global batch,
i.e. exactly what one process computes on that batch (up to the order of floating-point sums).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistContext",
    "init",
    "shutdown",
    "barrier",
    "main_first",
    "wrap",
    "shard_bounds",
    "shard_batch",
    "all_sum",
    "all_true",
    "gather_objects",
    "to_device",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False  # this context initialised the process group, so it destroys it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes logs, checkpoints and results."""
        return self.rank == 0


def _default_backend() -> str:
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def init(backend: str | None = None) -> DistContext:
    """Join the process group described by torchrun's environment (idempotent).

    ``backend``: ``"gloo"`` or ``"nccl"``; default ``nccl`` when CUDA is available, else ``gloo``
    (the environment variable ``MATBACKPROP_DIST_BACKEND`` overrides the default).
    A process started without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) gets a single-process context.
    """
    if dist.is_available() and dist.is_initialized():  # a caller (or an earlier fit) already joined
        backend = dist.get_backend()
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device, backend, owns_group=False)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return DistContext()
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world_size} but this torch build has no torch.distributed")
    backend = backend or os.environ.get("MATBACKPROP_DIST_BACKEND") or _default_backend()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)  # nccl needs one GPU per process
        device = torch.device("cuda", local_rank)
    dist.init_process_group(backend=backend)  # rendezvous from MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device, backend, owns_group=True)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if ``ctx`` joined it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


@contextlib.contextmanager
def main_first(ctx: DistContext) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. to build a cache); the others run it once rank 0 is done."""
    if not ctx.is_main:
        barrier(ctx)
    yield
    if ctx.is_main:
        barrier(ctx)


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``model`` on ``ctx.device``, wrapped in DistributedDataParallel when there are several ranks."""
    model.to(ctx.device)
    if not ctx.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s contiguous slice of ``n`` items; the first ``n % W`` get one more."""
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _length(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, list):
        return len(batch)
    if isinstance(batch, tuple) and batch and all(isinstance(t, torch.Tensor) for t in batch):
        n = batch[0].shape[0]
        if all(t.shape[0] == n for t in batch):
            return n
    raise TypeError(
        "cannot shard this batch: the default sharding takes a list of samples, a tensor or a tuple of "
        f"tensors with a common first dimension (got {type(batch).__name__}); pass fit(..., shard=...)"
    )


def _slice(batch: Any, lo: int, hi: int) -> Any:
    if isinstance(batch, tuple):
        return tuple(t[lo:hi] for t in batch)
    return batch[lo:hi]


def shard_batch(batch: Any, rank: int, world_size: int) -> tuple[Any, float]:
    """Rank ``rank``'s slice of a global batch and its weight (its share of the samples).

    A rank whose slice would be empty (a global batch smaller than the world) gets the first sample
    with weight 0: DDP needs every rank to run a forward and backward pass in each step, and the
    zero weight keeps the sample from counting twice.
    """
    n = _length(batch)
    lo, hi = shard_bounds(n, rank, world_size)
    if hi == lo:
        return _slice(batch, 0, 1), 0.0
    return _slice(batch, lo, hi), (hi - lo) / n


def all_sum(value: float, ctx: DistContext) -> float:
    """Sum of a scalar over the ranks (itself in a single process)."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t)


def all_true(flag: bool, ctx: DistContext) -> bool:
    """Whether ``flag`` holds on every rank (so all ranks take the same branch)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list in a single process)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (nested in tuples, lists and dicts) moved to ``device``."""
    if device.type == "cpu":
        return batch  # the experiments build their batches on the CPU already
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        moved = [to_device(b, device) for b in batch]
        return type(batch)(moved) if isinstance(batch, list) else tuple(moved)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


#: ``shard(global_batch, rank, world_size) -> (local_batch, weight)``; see :func:`shard_batch`.
ShardFn = Callable[[Any, int, int], "tuple[Any, float]"]
