"""A plain epoch loop with resumable state, run in one process or data-parallel under torchrun.

Resume is exact. A checkpoint (written atomically at the end of each epoch, and every
``checkpoint_every`` steps when set) holds the model, the optimizer, every random generator's state
and the position in the epoch (batches done, running loss sums). Each epoch's data order comes from
a generator seeded by ``(seed, epoch)``; a resumed run re-creates that epoch's batch stream and
discards the batches already trained on (they are built again, not trained on), so the generator is
where it was when the checkpoint was written. A run killed at any point and restarted with
``resume=True`` ends with the same parameters and logged losses as an uninterrupted run (bitwise, on
the same machine and thread count), provided ``batches`` draws its randomness only from the
generator it is given and ``step`` only from torch's global generator.

Data parallel: see :mod:`matbackprop.train.distributed`. Every rank builds the same global batch and
trains on its slice; rank 0 alone writes the log and the checkpoints.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from . import distributed
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .logger import CSVLogger

__all__ = ["TrainConfig", "fit"]


@dataclass
class TrainConfig:
    """Options of :func:`fit`.

    ``checkpoint_every``: also checkpoint every that many steps inside an epoch (``None``: at epoch
    ends only; a resumed run then repeats the interrupted epoch's finished steps).
    ``skip_nonfinite``: skip (and log) a step whose loss or gradient is not finite; ``False`` stops
    with ``FloatingPointError`` instead. ``max_consecutive_skips``: stop once that many steps in a row
    were skipped (``None``: never). ``log_events``: rows written to the log when a fresh run starts
    (e.g. the corrupt files skipped while reading the data). ``dist_backend``: process-group backend
    under torchrun (default ``nccl`` with CUDA, else ``gloo``).
    """

    epochs: int
    out_dir: Path
    seed: int = 0
    resume: bool = False
    skip_nonfinite: bool = True
    max_consecutive_skips: int | None = None
    max_grad_norm: float | None = None
    checkpoint_every: int | None = None
    desc: str = "train"
    extra_state: dict = field(default_factory=dict)
    log_events: list[dict] = field(default_factory=list)
    dist_backend: str | None = None


def _grads_finite(params: Sequence[torch.nn.Parameter]) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)


def _takes_net(step: Callable) -> bool:
    """Whether ``step`` accepts ``(batch, net)`` rather than ``(batch)``."""
    try:
        params = inspect.signature(step).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the classic signature
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _call_step(step: Callable, ctx: distributed.DistContext) -> Callable[[Any, torch.nn.Module], torch.Tensor]:
    if _takes_net(step):
        return step
    if ctx.enabled:
        # DDP only synchronises gradients of a forward pass run through its wrapper.
        raise TypeError(
            "under torchrun, fit needs step(batch, net) that runs the forward pass through net "
            "(the DistributedDataParallel wrapper), not a step(batch) that calls the model itself"
        )
    return lambda batch, net: step(batch)


@dataclass
class _Position:
    """Progress through the current epoch, saved with mid-epoch checkpoints."""

    epoch: int
    batches_done: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    skipped: int = 0
    seconds: float = 0.0


def _checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    completed_epoch: int,
    position: _Position | None,
    config: TrainConfig,
    ctx: distributed.DistContext,
) -> None:
    """Rank 0 writes the state (with every rank's generator state); the others wait until it is written."""
    rngs = distributed.gather_objects(rng_state(), ctx)  # collective: every rank takes part
    if ctx.is_main:
        save_checkpoint(
            path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": completed_epoch,
                "rng": rngs[0],
                "rng_per_rank": rngs,
                "position": None if position is None else vars(position),
                **config.extra_state,
            },
        )
    distributed.barrier(ctx)


def _resume(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ctx: distributed.DistContext
) -> tuple[int, _Position | None]:
    """Load the checkpoint; returns the epoch to run next and the position inside it (if mid-epoch)."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    per_rank = state.get("rng_per_rank") or [state["rng"]]
    # A different world size cannot restore per-rank streams; rank 0's is the best available.
    set_rng_state(per_rank[ctx.rank] if len(per_rank) == ctx.world_size else state["rng"])
    position = _Position(**state["position"]) if state.get("position") else None
    if ctx.is_main:
        where = (
            f"epoch {position.epoch + 1}, batch {position.batches_done}"
            if position
            else f"the end of epoch {state['epoch'] + 1}"
        )
        print(f"resumed from {path} at {where}")
    return (position.epoch if position else state["epoch"] + 1), position


def _before(epoch: int, position: _Position | None) -> Callable[[dict[str, str]], bool]:
    """Whether a log row was written before the checkpoint the run resumes from (0-based ``epoch``)."""
    done = position.batches_done if position is not None else 0

    def keep(row: dict[str, str]) -> bool:
        if not row.get("epoch"):
            return True  # run-level events (e.g. corrupt files skipped)
        e = int(row["epoch"]) - 1
        if e != epoch:
            return e < epoch
        return bool(row.get("batch")) and int(row["batch"]) < done  # an event of the resumed epoch's done part

    return keep


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: Callable[..., torch.Tensor],
    batches: Callable[[torch.Generator], Iterable[object]],
    config: TrainConfig,
    on_epoch_end: Callable[[int], dict] | None = None,
    shard: distributed.ShardFn = distributed.shard_batch,
) -> dict:
    """Train ``model`` for ``config.epochs`` epochs.

    ``batches(generator)`` yields one epoch's batches (shuffled with the given generator).
    ``step(batch)`` or ``step(batch, net)`` returns the scalar loss, the mean over the batch; a step
    that takes ``net`` must run the forward pass through it (under torchrun it is the
    DistributedDataParallel wrapper of ``model``, otherwise ``model`` itself), and only such a step
    can run under torchrun. There, ``shard(batch, rank, world_size)`` picks each rank's part of the
    global batch and its weight (:func:`~matbackprop.train.distributed.shard_batch`).

    A non-finite loss or gradient is logged with its epoch and batch index and, with
    ``skip_nonfinite``, the update is skipped (the parameters and optimizer state are left untouched);
    otherwise training stops with ``FloatingPointError``. ``on_epoch_end(epoch)`` (run on every rank)
    may return extra scalars for the log. Returns the final log row.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from matbackprop.train import TrainConfig, fit
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> model = torch.nn.Linear(3, 1)
        >>> X, y = torch.randn(32, 3), torch.randn(32, 1)
        >>> def batches(generator):                         # one epoch: shuffled mini-batches
        ...     order = torch.randperm(32, generator=generator)
        ...     return [order[i : i + 8] for i in range(0, 32, 8)]
        >>> def step(index):                                # the mean loss of one batch
        ...     return torch.nn.functional.mse_loss(model(X[index]), y[index])
        >>> config = TrainConfig(epochs=2, out_dir=Path(tempfile.mkdtemp()))
        >>> summary = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), step, batches, config)
        >>> sorted(p.name for p in config.out_dir.iterdir())
        [...'checkpoint.pt'...]
    """
    ctx = distributed.init(config.dist_backend)
    try:
        return _fit(model, optimizer, _call_step(step, ctx), batches, config, on_epoch_end, shard, ctx)
    finally:
        distributed.shutdown(ctx)


def _fit(model, optimizer, step, batches, config: TrainConfig, on_epoch_end, shard, ctx) -> dict:
    out = Path(config.out_dir)
    ckpt = out / "checkpoint.pt"
    log = None
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not config.resume:  # a fresh run starts a fresh log (a resumed one keeps appending)
            (out / "train_log.csv").unlink(missing_ok=True)
        log = CSVLogger(out / "train_log.csv", tensorboard_dir=out / "tensorboard")
    start_epoch, position = 0, None
    torch.manual_seed(config.seed)
    model.to(ctx.device)
    if config.resume and ckpt.exists():
        start_epoch, position = _resume(ckpt, model, optimizer, ctx)
        if log is not None:
            log.keep_only(_before(start_epoch, position))
    elif log is not None:
        for event in config.log_events:
            log.log(event)
    net = distributed.wrap(model, ctx)
    params = [p for p in model.parameters() if p.requires_grad]
    row: dict = {}
    streak = 0
    for epoch in range(start_epoch, config.epochs):
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        pos = position if position is not None and position.epoch == epoch else _Position(epoch)
        started = time.perf_counter() - pos.seconds
        stream = iter(batches(gen))
        for _ in range(pos.batches_done):  # already trained on before the interruption
            next(stream)
        bar = tqdm(
            stream,
            desc=f"{config.desc} epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            leave=False,
            initial=pos.batches_done,
            disable=not ctx.is_main,
        )
        for index, batch in enumerate(bar, start=pos.batches_done):
            loss = _train_step(net, optimizer, step, batch, params, config, shard, ctx)
            pos.batches_done = index + 1
            if loss is None:
                pos.skipped += 1
                streak += 1
                message = f"non-finite loss or gradient at epoch {epoch + 1}, batch {index}"
                if log is not None:
                    log.log({"epoch": epoch + 1, "batch": index, "event": message})
                if not config.skip_nonfinite:
                    raise FloatingPointError(message)
                if ctx.is_main:
                    tqdm.write(f"skipped update: {message}")
                if config.max_consecutive_skips is not None and streak >= config.max_consecutive_skips:
                    raise FloatingPointError(
                        f"{streak} consecutive non-finite steps (the last: {message}); stopping (max_consecutive_skips)"
                    )
            else:
                streak = 0
                pos.loss_sum += loss
                pos.loss_count += 1
                bar.set_postfix(loss=f"{loss:.4f}")
            if config.checkpoint_every and pos.batches_done % config.checkpoint_every == 0:
                pos.seconds = time.perf_counter() - started
                _checkpoint(ckpt, model, optimizer, epoch - 1, pos, config, ctx)
        row = {
            "epoch": epoch + 1,
            "loss": pos.loss_sum / pos.loss_count if pos.loss_count else math.nan,
            "skipped": pos.skipped,
            "seconds": round(time.perf_counter() - started, 2),
        }
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch))
        if log is not None:
            log.log(row, step=epoch + 1)
        _checkpoint(ckpt, model, optimizer, epoch, None, config, ctx)
    return row


def _train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step,
    batch,
    params,
    config: TrainConfig,
    shard,
    ctx: distributed.DistContext,
) -> float | None:
    """One update; returns the global batch's mean loss, or ``None`` when the step was skipped.

    Every rank reaches the same verdict (the flags are reduced), so no rank steps without the others.
    """
    weight = 1.0
    if ctx.enabled:
        batch, weight = shard(batch, ctx.rank, ctx.world_size)
    batch = distributed.to_device(batch, ctx.device)
    optimizer.zero_grad(set_to_none=True)
    loss = step(batch, net)
    ok = distributed.all_true(bool(torch.isfinite(loss)), ctx)
    if ok:
        # DDP averages over the ranks: scale so the average is the gradient of the global mean.
        (loss * (weight * ctx.world_size) if ctx.enabled else loss).backward()
        ok = distributed.all_true(_grads_finite(params), ctx)
    if not ok:
        optimizer.zero_grad(set_to_none=True)  # never let a non-finite gradient reach the optimizer
        return None
    if config.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    optimizer.step()
    return distributed.all_sum(float(loss.detach()) * weight, ctx)
