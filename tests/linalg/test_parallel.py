"""Batch-parallel execution (matbackprop.linalg.parallel): same results at any thread count, errors
from worker chunks, fallbacks, and safety under DataLoader workers (fork) and gloo processes."""

from __future__ import annotations

import datetime
import subprocess
import sys
import threading

import pytest
import torch

import matbackprop as mb
from matbackprop.linalg import parallel
from matbackprop.nn import LogEig, ReEig, SecondOrderPooling, SPDBatchNorm

CONTROL = parallel._thread_control()
needs_control = pytest.mark.skipif(not CONTROL.ok, reason="per-thread OpenMP/MKL control unavailable in this build")


@pytest.fixture
def split(monkeypatch):
    """Split every batch (tiny thresholds) and count the parallel sections that ran."""
    monkeypatch.setattr(parallel, "THRESHOLDS", {d: (1e-9, 1 << 30) for d in parallel.THRESHOLDS})
    calls = []
    run = parallel._Pool.run

    def counting(self, *args, **kwargs):
        calls.append(True)
        out = run(self, *args, **kwargs)
        calls[-1] = out is not None  # False: the pool was busy, the caller ran serially
        return out

    monkeypatch.setattr(parallel._Pool, "run", counting)
    return calls


def _in_thread(fn, threads: int):
    """``fn()`` on a fresh thread with its own intra-op thread count (the process-wide one untouched)."""
    out: list = []

    def body():
        saved = CONTROL.set(threads)
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 -- surfaced in the caller
            out.append(exc)
        finally:
            CONTROL.restore(saved)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _spd(b: int, n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(b, n, n, generator=g, dtype=dtype)
    return A @ A.mT / n + 0.1 * torch.eye(n, dtype=dtype)


def _all_gradients(dtype: torch.dtype) -> list[torch.Tensor]:
    """Outputs and input gradients of every parallelised Function on one batch."""
    g = torch.Generator().manual_seed(1)
    X = _spd(12, 7, dtype).requires_grad_()
    A = torch.randn(12, 9, 5, generator=g, dtype=dtype, requires_grad=True)
    F = torch.randn(3, 6, 5, 4, generator=g, dtype=dtype, requires_grad=True)
    W = [torch.randn(12, 7, 7, generator=g, dtype=dtype) for _ in range(6)]
    L, Q = mb.eigh(X)
    U, S, Vh = mb.svd(A)
    Ug, Sg, Vhg = mb.svd(A, gram=True)
    outs = [mb.logm(X), mb.sqrtm(X), mb.invsqrtm(X), mb.expm(X / 10), mb.clamp_eigs(X, 0.5), Q @ Q.mT * L[..., None]]
    pooled = SecondOrderPooling(route="svd")(F) + SecondOrderPooling(route="eig", normalization="sqrt")(F)
    loss = sum((o * w).sum() for o, w in zip(outs, W)) + (U * U).sum() + S.sum() + (Vh[..., 0] ** 2).sum()
    loss = loss + Sg.square().sum() + (Ug @ Vhg).sum() + pooled.square().sum()
    grads = torch.autograd.grad(loss, (X, A, F))
    return [o.detach() for o in outs] + [pooled.detach(), *grads]


@needs_control
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_results_do_not_depend_on_the_thread_count(dtype, split):
    one = _in_thread(lambda: _all_gradients(dtype), 1)
    assert not split  # one thread: the serial path
    two = _in_thread(lambda: _all_gradients(dtype), 2)
    assert split and all(split)  # split across two threads
    # Each matrix goes through the same single-threaded kernels however the batch is chunked, but MKL
    # picks code paths by memory alignment and a chunk starts at another alignment: the results agree
    # to rounding, amplified by the conditioning of the eigenvectors (measured: 5e-15 in float64,
    # 6e-6 in float32, whose eps is 1.2e-7).
    for a, b in zip(one, two):
        rel = float((a - b).abs().max() / a.abs().max())
        assert rel < (1e-12 if dtype == torch.float64 else 1e-4), rel


@needs_control
def test_default_run_matches_one_thread_without_forced_splitting():
    # The shipped thresholds: the batch is split where it pays; float64 gradients agree below 1e-12.
    X = _spd(256, 32, torch.float64).requires_grad_()
    grad = lambda: torch.autograd.grad((mb.logm(X) ** 2).sum(), X)[0]  # noqa: E731
    one, default = _in_thread(grad, 1), _in_thread(grad, max(2, torch.get_num_threads()))
    assert float((one - default).abs().max() / one.abs().max()) < 1e-12


@needs_control
def test_an_error_in_a_chunk_is_raised_once_naming_the_first_bad_index(split):
    X = _spd(8, 6, torch.float64)
    X[5, 1, 1] = X[6, 2, 2] = float("nan")
    unhandled = []
    hook, threading.excepthook = threading.excepthook, unhandled.append
    try:
        with pytest.raises(torch.linalg.LinAlgError, match=r"\(Batch element 5\)"):
            _in_thread(lambda: mb.eigh(X, check=False), 2)
        with pytest.raises(ValueError, match=r"batch index \(5,\)"):  # checked before any split
            _in_thread(lambda: mb.logm(X), 2)
        raised = []

        def fn(Y):
            bad = torch.isnan(Y).flatten(1).any(1)
            if bool(bad.any()):
                raised.append(1)
                raise RuntimeError(f"(Batch element {int(bad.nonzero()[0, 0])}) bad")
            return Y

        with pytest.raises(RuntimeError, match=r"^\(Batch element 5\) bad$"):
            _in_thread(lambda: parallel.map_batch(fn, X, core_dims=(2,)), 2)
        assert split == [True] * 2 and 1 <= len(raised) <= 2  # logm raised before splitting
    finally:
        threading.excepthook = hook
    assert not unhandled  # nothing escaped in a worker thread


@needs_control
def test_caller_thread_count_is_restored_and_global_count_untouched(split):
    before = torch.get_num_threads()
    _in_thread(lambda: mb.logm(_spd(16, 5, torch.float64)), 2)
    assert split and all(split)
    assert torch.get_num_threads() == before
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert seen == [before]  # a new thread starts with the process-wide count, not the workers' 1


def test_transforms_and_tracing_keep_the_serial_path(split, monkeypatch):
    X = _spd(6, 4, torch.float64)
    Xr = X.clone().requires_grad_()
    ref = torch.autograd.grad(mb.logm(Xr).sum(), Xr)[0]
    count = len(split)
    g = _in_thread(lambda: torch.func.grad(lambda Z: mb.logm(Z).sum())(X), 2) if CONTROL.ok else ref
    torch.testing.assert_close(g, ref, rtol=1e-12, atol=0)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    if CONTROL.ok:
        _in_thread(lambda: mb.logm(X), 2)
    assert len(split) == count  # no parallel section under a transform or while compiling


def test_cuda_large_single_and_one_thread_are_serial():
    assert parallel.plan(1, 2048, torch.float64, 16) == 1  # one matrix
    assert parallel.plan(4, 1024, torch.float32, 16) == 1  # few large matrices: LAPACK's own threads
    assert parallel.plan(1024, 32, torch.float32, 1) == 1  # one thread
    assert parallel.plan(1024, 32, torch.float32, 2) == 2
    assert parallel.plan(4, 8, torch.float32, 2) == 1  # too little work to repay the hand-off
    assert parallel.plan(64, 512, torch.float64, 2, "products") == 1  # MKL's threaded GEMMs
    assert parallel.plan(64, 512, torch.float64, 2) == 2  # but the eigh loop is serial
    assert parallel.plan(16, 32, torch.float64, 2) == 2 and parallel.plan(16, 32, torch.float64, 2, "products") == 1
    assert not parallel._plain_eager([torch.empty(2, 2, device="meta")])


# ---------------------------------------------------------------------------------------------------
# DataLoader workers (fork) and gloo processes


class _SPDSet(torch.utils.data.Dataset):
    """Each item runs the layers, forward and backward, inside the worker process."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        torch.manual_seed(i)
        X = _spd(16, 6, torch.float64, seed=i).requires_grad_()
        Y = LogEig()(ReEig(1e-3)(X))
        (g,) = torch.autograd.grad(Y.square().sum(), X)
        return Y.detach(), g, len(parallel._pool.workers) > 0


def _two_threads(_worker_id: int) -> None:
    torch.set_num_threads(2)  # DataLoader sets 1 in its workers; 2 exercises the split path there


@needs_control
def test_dataloader_fork_workers_use_the_layers(split):
    X = _spd(16, 6, torch.float64)
    _in_thread(lambda: mb.logm(X), 2)  # live workers in the parent at fork time
    assert parallel._pool.workers
    data = _SPDSet()
    loader = torch.utils.data.DataLoader(
        data, batch_size=None, num_workers=2, worker_init_fn=_two_threads, multiprocessing_context="fork", timeout=120
    )
    got = list(loader)
    assert len(got) == 4 and all(used for _, _, used in got)  # the split path ran in the children
    for i, (Y, g, _) in enumerate(got):
        Y0, g0, _ = _in_thread(lambda i=i: data[i], 1)
        torch.testing.assert_close(Y, Y0, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g, g0, rtol=1e-12, atol=1e-14)


def _spd_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(SPDBatchNorm(6).double(), ReEig(1e-3), LogEig("triu"), torch.nn.Linear(21, 1).double())


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    parallel.THRESHOLDS.update({d: (1e-9, 1 << 30) for d in parallel.THRESHOLDS})  # split even small batches
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120)
    )
    try:
        model = torch.nn.parallel.DistributedDataParallel(_spd_net())
        X = _spd(16, 6, torch.float64, seed=3)[rank * 8 : (rank + 1) * 8]
        loss = model(X).square().mean()
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        if rank == 0:
            torch.save(
                {"grads": grads, "threads": torch.get_num_threads(), "split": len(parallel._pool.workers) > 0}, out
            )
        # Both ranks finish their collectives before either tears its process group down: once in CI,
        # rank 1 (which saves nothing, so it reaches the teardown first) aborted with "terminate called
        # without an active exception" while rank 0 was still running.
        dist.barrier()
        del model, loss
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_use_the_layers(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("gloo backend not available")
    out = tmp_path / "rank0.pt"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    if got["threads"] > 1 and CONTROL.ok:
        assert got["split"]  # the children used the split path
    # DDP averages the ranks' gradients; each rank's batch norm uses its own half's statistics.
    model = _spd_net()
    for rank in range(2):
        (model(_spd(16, 6, torch.float64, seed=3)[rank * 8 : (rank + 1) * 8]).square().mean() / 2).backward()
    for g, p in zip(got["grads"], model.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-12)


def test_explicit_thread_count_with_large_batched_eigh_completes():
    # torch.set_num_threads(N > 1) switches MKL's dynamic threading off, after which a batched eigh at
    # n >= ~192 has stalled on small shared machines; the split path runs every chunk single-threaded.
    code = (
        "import torch, matbackprop as mb\n"
        "from matbackprop.linalg import parallel\n"
        "torch.set_num_threads(2)\n"
        "A = torch.randn(8, 200, 200, dtype=torch.float64)\n"
        "X = (A @ A.mT / 200 + torch.eye(200, dtype=torch.float64)).requires_grad_()\n"
        "g, = torch.autograd.grad(mb.logm(X).square().sum(), X)\n"
        "assert torch.isfinite(g).all()\n"
        "print(bool(parallel._pool.workers))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    assert out.stdout.strip() == str(CONTROL.ok)  # the split path ran where this build allows it
