"""Scoring the val images of a choice in worker processes, one image each.

The val choices that embed every image with one run (the smallest region, the edge signal) share this:
each worker loads the run's model and the val split once when it starts, then scores the images it is
given with a module-level function ``score(job, model, data, index)``. The workers are spawned, not
forked (see :mod:`.trained_rows`). Results come back in image order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch

__all__ = ["ValJob", "map_val_images"]


class ValJob(Protocol):
    """What a worker needs to set itself up: the run to load and where the data lies."""

    run: Path
    data_root: str


_STATE: tuple[Any, Any, Any, Callable[..., Any]] | None = None


def _start(job: ValJob, score: Callable[..., Any], threads: int) -> None:
    from ...data.bsds500 import BSDS500
    from .inference import load_model

    global _STATE
    torch.set_num_threads(threads)
    _STATE = (job, load_model(job.run), BSDS500(job.data_root, "val"), score)


def _call(index: int) -> Any:
    assert _STATE is not None, "each worker is set up when it starts"
    job, model, data, score = _STATE
    return score(job, model, data, index)


def map_val_images(
    job: ValJob,
    score: Callable[..., Any],
    n_images: int,
    workers: int,
    log: Callable[[str], None],
    what: str,
) -> Iterator[Any]:
    """``score(job, model, data, index)`` of val images ``0 .. n_images - 1`` in ``workers`` processes
    (``score`` must be a module-level function, so that the workers can import it), in image order,
    each logged as ``"<what> on val: n/N images, seconds"``."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    start = (job, score, torch.get_num_threads())
    with ProcessPoolExecutor(max(1, workers), mp.get_context("spawn"), initializer=_start, initargs=start) as pool:
        for n, result in enumerate(pool.map(_call, range(n_images))):
            log(f"{what} on val: {n + 1}/{n_images} images, {time.perf_counter() - started:.0f}s")
            yield result
