"""The benchmark behind ``docs/benchmarks.md``, split by job (run it as ``benchmarks/bench_spectral.py``).

- ``config``:   the typed run configuration (``BenchConfig``) and the default sizes.
- ``spectral``: ``logm`` / ``sqrtm`` methods under test, inputs, float64 references, timing, ties, stage profile.
- ``o2p``:      ``SecondOrderPooling`` throughput.
- ``ncut``:     ``ncut_embedding`` + ``projector_loss`` in fresh subprocesses, and against ncut-pytorch.
- ``goals``:    the issue-6 goals, their tolerances (one source for the check and the text) and evaluation.
- ``report``:   plain-text and Markdown tables, the generated ``docs/benchmarks.md`` page.
- ``plot``:     the time-ratio figure.
- ``cli``:      argument parsing and the run order.

Modules import ``_timing`` (``benchmarks/_timing.py``) as a top-level module: the entry point puts
``benchmarks/`` on ``sys.path``.
"""
