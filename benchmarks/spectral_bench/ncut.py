"""Normalized-cuts section: ``ncut_embedding`` + ``projector_loss`` per configuration in a fresh subprocess.

Peak memory is the growth of the resident-set high-water mark (``VmHWM``) over the process once the
inputs were built, so each configuration needs its own process: ``run_child`` re-runs the entry point
with the hidden ``--_child KIND SPEC`` argument, which calls ``ncut_child`` or ``ncut_compare_child``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import torch

import matbackprop

import _timing as T
from .config import ENTRY, PEER_HINT


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _ncut_inputs(
    nodes: int, d: int, dtype: torch.dtype, segments: int, seed: int, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    # drawn on the CPU so that every device sees the same data
    g = torch.Generator().manual_seed(seed)
    F, labels = torch.rand(nodes, d, dtype=dtype, generator=g), torch.randint(0, segments, (nodes,), generator=g)
    return F.to(device), labels.to(device)


def _spec_inputs(spec: dict[str, Any], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return _ncut_inputs(spec["nodes"], spec["d"], getattr(torch, spec["dtype"]), spec["segments"], spec["seed"], device)


def _ours_step(F0: torch.Tensor, labels: torch.Tensor, k: int) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        F = F0.detach().requires_grad_(True)
        Z = cast(torch.Tensor, matbackprop.ncut_embedding(F, k))  # the embedding alone (no eigenvalues asked)
        loss = matbackprop.projector_loss(Z, labels)
        (g,) = torch.autograd.grad(loss.sum(), F)
        return g

    return run


def ncut_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One ncut configuration in this (fresh) process: timing and peak-RSS growth."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    device = spec.get("device", "cpu")
    F0, labels = _spec_inputs(spec, device)
    base = _rss_kib("VmRSS")  # before the first step: the peak includes allocator and LAPACK workspaces
    step = _ours_step(F0, labels, spec["k"])
    start = time.perf_counter()
    step()  # warm-up
    tm = T.interleaved(
        [("ours", step)],
        repeats=spec["repeats"],
        min_repeats=min(3, spec["repeats"]),
        budget_s=spec["budget"],
        start=start,
        device=device,
    )
    peak = _rss_kib("VmHWM")  # host memory; on CUDA the tensor peak below is the device's
    tensor_peak = T.peak_memory_bytes(step, device)  # after VmHWM: the profiler itself allocates
    feature_bytes = F0.numel() * F0.element_size()
    lo, hi = tm.quartiles_ms("ours")
    return {
        **spec,
        "median_ms": tm.median_ms("ours"),
        "iqr": [lo, hi],
        "reps": tm.rounds,
        "feature_mb": feature_bytes / 2**20,
        "peak_extra_mb": max(0, peak - base) / 1024,
        "tensor_peak_mb": None if tensor_peak is None else tensor_peak / 2**20,
    }


def ncut_compare_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Ours against ncut-pytorch's exact-gradient path, interleaved in this process."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    try:
        import ncut_pytorch
        from ncut_pytorch import ncut_fn
    except ImportError:
        return {**spec, "error": PEER_HINT}
    device = spec.get("device", "cpu")
    F0, labels = _spec_inputs(spec, device)
    k = spec["k"]

    def theirs() -> torch.Tensor:
        F = F0.detach().requires_grad_(True)
        Z, _ = ncut_fn(F, n_eig=k, exact_gradient=True, device=device)
        loss = matbackprop.projector_loss(Z, labels)
        (g,) = torch.autograd.grad(loss.sum(), F)
        return g

    ours = _ours_step(F0, labels, k)
    g_ours, g_theirs = ours(), theirs()  # warm-up and finiteness check
    start = time.perf_counter()
    tm = T.interleaved(
        [("matbackprop", ours), ("ncut-pytorch", theirs)],
        repeats=spec["repeats"],
        min_repeats=min(3, spec["repeats"]),
        budget_s=spec["budget"],
        start=start,
        device=device,
    )
    return {
        **spec,
        "version": getattr(ncut_pytorch, "__version__", "?"),
        "ours_ms": tm.median_ms("matbackprop"),
        "theirs_ms": tm.median_ms("ncut-pytorch"),
        "reps": tm.rounds,
        "ours_finite": bool(torch.isfinite(g_ours).all()),
        "theirs_finite": bool(torch.isfinite(g_theirs).all()),
    }


def run_child(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, ENTRY, "--_child", kind, json.dumps(spec)]
    env = dict(os.environ)
    if spec.get("threads") == 1:  # keep the child's OpenMP pool at one thread from the start
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {**spec, "error": f"child failed: {tail[:120]}"}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"ncut": ncut_child, "compare": ncut_compare_child}
