"""A plain epoch loop with resumable state.

Resume is exact: the checkpoint written at the end of each epoch holds the model, the optimizer, the
epoch counter and every random generator's state, and each epoch's data order is drawn from a generator
seeded by ``(seed, epoch)``; a run killed at any point and restarted with ``resume=True`` repeats the
interrupted epoch from its start and ends with the same parameters as an uninterrupted run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from tqdm import tqdm

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .logger import CSVLogger

__all__ = ["TrainConfig", "fit"]


@dataclass
class TrainConfig:
    epochs: int
    out_dir: Path
    seed: int = 0
    resume: bool = False
    skip_nonfinite: bool = True
    max_grad_norm: float | None = None
    desc: str = "train"
    extra_state: dict = field(default_factory=dict)


def _grads_finite(params: Sequence[torch.nn.Parameter]) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: Callable[[object], torch.Tensor],
    batches: Callable[[torch.Generator], Iterable[object]],
    config: TrainConfig,
    on_epoch_end: Callable[[int], dict] | None = None,
) -> dict:
    """Train ``model`` for ``config.epochs`` epochs.

    ``batches(generator)`` yields one epoch's batches (shuffled with the given generator); ``step(batch)``
    returns the scalar loss. A non-finite loss or gradient is logged with its epoch and batch index and,
    with ``skip_nonfinite``, the update is skipped; otherwise training stops with an error.
    ``on_epoch_end(epoch)`` may return extra scalars for the log. Returns the final log row.
    """
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    if not config.resume:  # a fresh run starts a fresh log (a resumed one keeps appending)
        (out / "train_log.csv").unlink(missing_ok=True)
    log = CSVLogger(out / "train_log.csv", tensorboard_dir=out / "tensorboard")
    start_epoch = 0
    torch.manual_seed(config.seed)
    if config.resume and ckpt.exists():
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        start_epoch = state["epoch"] + 1
        print(f"resumed from {ckpt} after epoch {state['epoch']}")
    params = [p for p in model.parameters() if p.requires_grad]
    row: dict = {}
    for epoch in range(start_epoch, config.epochs):
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        losses, skipped, started = [], 0, time.perf_counter()
        bar = tqdm(batches(gen), desc=f"{config.desc} epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False)
        for index, batch in enumerate(bar):
            optimizer.zero_grad(set_to_none=True)
            loss = step(batch)
            ok = bool(torch.isfinite(loss))
            if ok:
                loss.backward()
                ok = _grads_finite(params)
            if not ok:
                skipped += 1
                message = f"non-finite loss or gradient at epoch {epoch + 1}, batch {index}"
                log.log({"epoch": epoch + 1, "event": message})
                if not config.skip_nonfinite:
                    raise FloatingPointError(message)
                tqdm.write(f"skipped update: {message}")
                continue
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        row = {
            "epoch": epoch + 1,
            "loss": sum(losses) / len(losses) if losses else math.nan,
            "skipped": skipped,
            "seconds": round(time.perf_counter() - started, 2),
        }
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch))
        log.log(row, step=epoch + 1)
        save_checkpoint(
            ckpt,
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "rng": rng_state(),
             **config.extra_state},
        )
    return row
