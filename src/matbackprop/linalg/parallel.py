"""Batch-parallel execution of the spectral core on the CPU.

Why. On the CPU ``torch.linalg.eigh`` (and ``svd``) works through a batch one matrix after another: its
LAPACK calls are too small to use extra threads, so torch's intra-op threads sit idle during the most
expensive step of every spectral layer. Splitting the batch into chunks that run on separate threads,
each with one intra-op thread, uses every core (see ``THRESHOLDS`` for the measurements).

Policy (one place, :func:`plan`). A call is split only when all of these hold, and otherwise runs
exactly the serial code path it replaces:

* the CPU, plain eager mode: no ``torch.compile``/``torch.export``/``jit`` tracing, no ``torch.func``
  transform, no forward-mode AD level, no ``__torch_function__``/``__torch_dispatch__`` mode, plain
  ``torch.Tensor`` operands (not subclasses, fake or functional tensors), no operand needing a graph;
* the calling thread's ``torch.get_num_threads()`` is above 1 (so DataLoader workers, which torch sets
  to one thread, and ``torchrun`` processes with ``OMP_NUM_THREADS=1`` keep the serial path);
* the batch holds enough work for every chunk to repay its overhead (``THRESHOLDS``, from
  ``benchmarks/parallel_calibrate.py``); one large matrix is never split;
* this process can give each thread its own intra-op thread count (below); otherwise never.

Threads. The chunks run on the calling thread and ``T - 1`` persistent daemon workers, ``T`` being
the caller's ``torch.get_num_threads()``; chunks are handed out dynamically, so a thread that the OS
deschedules delays the call by one chunk, not by a fixed share. ``torch.set_num_threads`` is
process-global in effect (it sets the count every new thread starts with, resizes a shared pool and
switches MKL's dynamic threading off, after which a batched eigh at n >= ~192 has been seen to
stall), so it is never called. Instead every participating thread sets its *own* OpenMP and MKL
counts to one (``omp_set_num_threads`` and ``MKL_Set_Num_Threads_Local`` are per thread); the caller
restores its values when its chunks are done. Nested calls (a chunk calling back into this module)
see one thread and run serially. One parallel section runs at a time: a second concurrent caller runs
serially instead of waiting. After ``fork`` the child drops the parent's (non-existent there) workers
and builds its own on demand.

Results. Each matrix is computed by the same single-threaded kernels whatever the chunking, so the
results equal a one-thread run up to rounding: MKL picks code paths by memory alignment, and a chunk
starts at another alignment than the whole batch. Measured (``tests/linalg/test_parallel.py``): logm
gradients at the default count against one thread differ by at most 1.4e-15 relative in float64 and
were bitwise equal in float32 at 256x32, 64x128 and 8x256; with every batch forced to split (7 x 7
matrices, all parallelised Functions) float64 differed by 5e-15 and float32 by 6e-6, which is float32's
rounding (eps 1.2e-7) amplified by the conditioning of the eigenvectors (eps / eigenvalue gap). Where
the serial path runs with several threads, the same holds against one thread for the same reason.

Errors. An exception raised in a chunk stops the remaining chunks and is raised once, in the caller,
from the chunk with the lowest batch index; torch's ``(Batch element k)`` is rewritten to the index in
the whole batch.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import queue
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["map_batch", "plan", "matrix_size", "enabled", "set_enabled", "THRESHOLDS", "THREADED_LAPACK_N"]

#: Minimum work per chunk, ``(batch / chunks) n^3``, for a split to pay, per dtype and phase:
#: ``(decomposition, products)``. Decompositions (eigh, SVD) are serial loops over the batch in torch;
#: the products and elementwise passes of the backward are already threaded by torch and need far
#: larger chunks. Read off ``benchmarks/parallel_calibrate.py`` on the 2-core reference machine
#: (torch 2.13, MKL, minimum of 9 interleaved rounds, shared and loaded machine): eigh lost at
#: 1.3e5 per chunk (8x32: 0.75x f32, 0.88x f64) and won from 5.2e5 (32x32); the Daleckii-Krein
#: backward lost at 8x32 and 32x32 (0.09-0.51x) and won at 4.2e6 (256x32: 2.4x f32, 3.3x f64) and 1.7e7
#: (1024x32 f32: 1.6x); the reconstruction ``Q f(L) Q^T`` lost even at 1.7e7 (0.14x) and is not split.
#: float32 and float64 broke even at the same sizes within the noise. Rows where torch's multi-threaded
#: serial path stalled under the load (10-100x slower than usual, e.g. 64x16) were not used.
THRESHOLDS: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (2.5e5, 2.0e6),
    torch.float64: (2.5e5, 2.0e6),
}

#: Above this ``n`` LAPACK's and MKL's own threads start to pay: a batch smaller than the thread count
#: (which would leave threads idle) is not split, nor are the backward's products (large GEMMs are
#: threaded well by MKL; a split logm backward at 4 x 512 float64 measured 0.84x overall). At 2
#: threads the eigh split won at every size measured up to 2 x 1024 (2.0-3.4x at 4 x 512).
THREADED_LAPACK_N = 256

_ENV = "MATBACKPROP_PARALLEL"
_enabled = os.environ.get(_ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def enabled() -> bool:
    """Whether batch-parallel execution may be used (environment ``MATBACKPROP_PARALLEL=0`` turns it off)."""
    return _enabled


def set_enabled(value: bool) -> None:
    """Allow (``True``, the default) or forbid batch-parallel execution in this process."""
    global _enabled
    _enabled = bool(value)


# ---------------------------------------------------------------------------------------------------
# Per-thread intra-op thread counts


class _ThreadControl:
    """Handles on the OpenMP and MKL runtimes that torch uses, to set one thread's own counts."""

    def __init__(self) -> None:
        self.omp_set: Any = None
        self.omp_get: Any = None
        self.mkl_set: Any = None
        self.ok = False
        try:
            self._find()
        except Exception:  # noqa: BLE001 -- no /proc, no OpenMP build, unknown runtime: serial path
            self.ok = False

    def _find(self) -> None:
        if torch.__config__.parallel_info().find("OpenMP") < 0:
            return
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "/" in line}
        omp = [p for p in paths if re.search(r"/lib(gomp|iomp5|omp)[^/]*\.so", p)]
        for path in sorted(omp):
            lib = ctypes.CDLL(path)
            if hasattr(lib, "omp_set_num_threads") and hasattr(lib, "omp_get_max_threads"):
                self.omp_set, self.omp_get = lib.omp_set_num_threads, lib.omp_get_max_threads
                self.omp_get.restype = ctypes.c_int
                if self._controls_torch():
                    break
                self.omp_set = self.omp_get = None
        if self.omp_set is None:
            return
        if torch.backends.mkl.is_available():  # type: ignore[no-untyped-call]
            # MKL keeps its own per-thread count once torch.set_num_threads was called; the by-value
            # C entry point (the lower-case name is the Fortran one, which takes a pointer).
            lib = ctypes.CDLL(next(p for p in paths if "libtorch_cpu" in p))
            self.mkl_set = lib.MKL_Set_Num_Threads_Local
            self.mkl_set.restype = ctypes.c_int
        self.ok = True

    def _controls_torch(self) -> bool:
        # Verified on a scratch thread: torch must report the count we set through this runtime.
        seen: list[int] = []

        def probe() -> None:
            torch.get_num_threads()  # torch's lazy per-thread initialisation first
            self.omp_set(1)
            seen.append(torch.get_num_threads())

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join()
        return seen == [1]

    def set(self, threads: int) -> tuple[int, int]:
        """Give the calling thread ``threads`` intra-op threads; return what to pass to :meth:`restore`."""
        torch.get_num_threads()  # run torch's lazy per-thread initialisation before overriding it
        omp = int(self.omp_get())
        self.omp_set(threads)
        mkl = int(self.mkl_set(threads)) if self.mkl_set is not None else 0
        return omp, mkl

    def single(self) -> tuple[int, int]:
        """Set the calling thread to one intra-op thread; return what to pass to :meth:`restore`."""
        return self.set(1)

    def restore(self, saved: tuple[int, int]) -> None:
        self.omp_set(saved[0])
        if self.mkl_set is not None:
            self.mkl_set(saved[1])  # 0 restores "no local setting": the global count applies again


_control: _ThreadControl | None = None
_control_lock = threading.Lock()


def _thread_control() -> _ThreadControl:
    global _control
    if _control is None:
        with _control_lock:
            if _control is None:
                _control = _ThreadControl()
    return _control


# ---------------------------------------------------------------------------------------------------
# Worker pool


class _Job:
    """One parallel section: chunks handed out on demand to the caller and the workers."""

    def __init__(self, run: Callable[[int], Any], chunks: int) -> None:
        self.run, self.chunks = run, chunks
        self.results: list[Any] = [None] * chunks
        self.errors: dict[int, BaseException] = {}
        self.next = itertools.count()  # next() is atomic under the GIL
        self.failed = False
        self.done: queue.SimpleQueue[None] = queue.SimpleQueue()

    def work(self) -> None:
        with torch.no_grad():
            while not self.failed:
                i = next(self.next)
                if i >= self.chunks:
                    return
                try:
                    self.results[i] = self.run(i)
                except BaseException as exc:  # noqa: BLE001 -- re-raised once, in the caller
                    self.errors[i] = exc
                    self.failed = True


class _Worker:
    def __init__(self, control: _ThreadControl) -> None:
        self.inbox: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.control = control
        self.thread = threading.Thread(target=self._loop, name="matbackprop-parallel", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        self.control.single()  # for the worker's lifetime
        while True:
            job = self.inbox.get()
            try:
                job.work()
            finally:
                job.done.put(None)


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: list[_Worker] = []

    def run(self, run: Callable[[int], Any], chunks: int, threads: int, control: _ThreadControl) -> list[Any] | None:
        """Run ``run(i)`` for every chunk on ``threads`` threads; ``None`` when the pool is busy."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            while len(self.workers) < threads - 1:
                self.workers.append(_Worker(control))
            job = _Job(run, chunks)
            helpers = self.workers[: min(threads, chunks) - 1]
            for worker in helpers:
                worker.inbox.put(job)
            saved = control.single()
            try:
                job.work()
            finally:
                control.restore(saved)
                for _ in helpers:  # always wait: the workers read the caller's tensors
                    job.done.get()
        finally:
            self.lock.release()
        if job.errors:
            first = min(job.errors)
            raise job.errors[first]
        return job.results


_pool = _Pool()


def _after_fork_in_child() -> None:
    # The parent's workers do not exist in the child; their lock may have been held at fork time.
    global _pool, _control_lock
    _pool = _Pool()
    _control_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------------------------------
# Policy


def _plain_eager(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether we run in plain eager mode on plain CPU tensors that need no graph."""
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():  # type: ignore[no-untyped-call]
        return False
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return False
    if torch._C._len_torch_function_stack() > 0 or torch._C._len_torch_dispatch_stack() > 0:
        return False
    if torch.autograd.forward_ad._current_level >= 0:
        return False
    grad = torch.is_grad_enabled()
    for t in tensors:
        if type(t) is not torch.Tensor or t.device.type != "cpu" or t.layout != torch.strided:
            return False
        if grad and t.requires_grad:
            return False
    return True


def plan(batch: int, n: int, dtype: torch.dtype, threads: int, phase: str = "decomposition") -> int:
    """Number of chunks (1: serial) for ``batch`` matrices of size ``n`` at ``threads`` threads.

    ``min(threads, batch, batch n^3 / min_work)`` with ``min_work`` from ``THRESHOLDS`` for the phase
    (``"decomposition"`` or ``"products"``); 1 when a batch smaller than ``threads`` holds matrices
    larger than ``THREADED_LAPACK_N``, and for products of such matrices.
    """
    if threads < 2 or batch < 2 or (batch < threads and n > THREADED_LAPACK_N):
        return 1
    if phase != "decomposition" and n > THREADED_LAPACK_N:
        return 1  # products of large matrices: MKL's threaded GEMMs already use every core
    limits = THRESHOLDS.get(dtype)
    if limits is None:
        return 1
    min_work = limits[0] if phase == "decomposition" else limits[1]
    return max(1, min(threads, batch, int(batch * float(n) ** 3 / min_work)))


_BATCH_ELEMENT = re.compile(r"\(Batch element (\d+)\)")


def _reindex(exc: BaseException, offset: int) -> BaseException:
    """``exc`` with torch's chunk-relative ``(Batch element k)`` moved to the whole batch's index."""
    message = str(exc)
    if offset == 0 or not isinstance(exc, RuntimeError) or not _BATCH_ELEMENT.search(message):
        return exc
    fixed = _BATCH_ELEMENT.sub(lambda m: f"(Batch element {int(m.group(1)) + offset})", message, count=1)
    try:
        new = type(exc)(fixed)
    except Exception:  # noqa: BLE001 -- an exception type with another constructor: keep it as is
        return exc
    new.__traceback__ = exc.__traceback__
    return new


def map_batch(
    fn: Callable[..., Any],
    *args: torch.Tensor | None,
    core_dims: Sequence[int],
    n: int | None = None,
    phase: str = "decomposition",
) -> Any:
    """``fn(*args)``, computed chunk by chunk over the shared leading batch dimensions when that pays.

    ``args[i]`` has ``core_dims[i]`` trailing (per-matrix) dimensions after the batch dimensions,
    which all operands share exactly (``None`` operands pass through); ``fn`` must act on each batch
    element independently and return a tensor or a tuple of tensors whose leading dimensions are the
    batch. ``n`` is the matrix size for the cost model (default: the last dimension of ``args[0]``),
    ``phase`` its kind (see :func:`plan`). Without a split this is exactly ``fn(*args)``.
    """
    if torch.compiler.is_compiling():  # before any call Dynamo cannot trace (get_num_threads: graph break)
        return fn(*args)
    tensors = [a for a in args if a is not None]
    first = tensors[0]
    batch_shape = first.shape[: first.dim() - core_dims[0]]
    batch = math.prod(batch_shape)
    threads = torch.get_num_threads()
    chunks = plan(batch, first.shape[-1] if n is None else n, first.dtype, threads, phase) if _enabled else 1
    if chunks < 2 or not _plain_eager(tensors):
        return fn(*args)
    for a, k in zip(args, core_dims):
        if a is not None and a.shape[: a.dim() - k] != batch_shape:
            return fn(*args)  # broadcast operands: keep the serial path
    control = _thread_control()
    if not control.ok:
        return fn(*args)

    flat = [None if a is None else a.reshape((batch,) + a.shape[a.dim() - k :]) for a, k in zip(args, core_dims)]
    # A few more chunks than threads, so that a descheduled thread holds up only a small share.
    pieces = min(batch, chunks * 2 if batch >= 4 * chunks else chunks)
    bounds = [batch * i // pieces for i in range(pieces + 1)]

    def run(i: int) -> Any:
        lo, hi = bounds[i], bounds[i + 1]
        try:
            return fn(*[None if a is None else a[lo:hi] for a in flat])
        except BaseException as exc:  # noqa: BLE001 -- re-raised with the whole batch's index
            raise _reindex(exc, lo) from None

    results = _pool.run(run, pieces, chunks, control)
    if results is None:  # another thread holds the pool
        return fn(*args)
    if isinstance(results[0], torch.Tensor):
        out = torch.cat(results)
        return out.reshape(batch_shape + out.shape[1:])
    parts = [torch.cat(column) for column in zip(*results)]
    return tuple(p.reshape(batch_shape + p.shape[1:]) for p in parts)


def matrix_size(A: torch.Tensor, B: torch.Tensor | None = None) -> int:
    """Cost-equivalent square size ``(m n min(m, n))^(1/3)`` of an ``m x n`` decomposition.

    ``m`` is ``A``'s row count, ``n`` the column count of ``B`` (default ``A``): ``matrix_size(U, Vh)``
    for the factors of an SVD.
    """
    m, n = int(A.shape[-2]), int((A if B is None else B).shape[-1])
    return max(1, round(math.pow(m * n * min(m, n), 1.0 / 3.0)))
