"""The typed configuration of one benchmark run (built by ``cli.parse_args``) and the default sizes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENTRY = os.path.join(ROOT, "benchmarks", "bench_spectral.py")  # re-run in a child for each ncut configuration
FULL_SIZES = "256x32,64x128,16x512,4x1024"
QUICK_SIZES = "32x16,8x64"
PEER_HINT = "not installed (pip install -e .[peers])"


@dataclass
class BenchConfig:
    """Everything a run depends on; defaults for ``--quick`` vs a full run are resolved by ``cli.parse_args``."""

    quick: bool
    sections: set[str]
    functions: list[str]
    sizes: list[tuple[int, int]]
    dtypes: list[str]
    repeats: int
    min_repeats: int
    budget: float  # seconds per configuration, 0 = none
    warmup: int
    ns_iters: int
    device: str  # "cpu", "cuda" or "auto"
    threads: int | None
    keep_threads: bool
    profile: bool
    profile_size: str  # comma list of BATCHxN:DTYPE
    o2p_shape: tuple[int, ...]  # B, C, H, W
    ncut_nodes: list[int]
    ncut_dtypes: list[str]
    ncut_compare_nodes: int
    seed: int
    markdown: str  # "" = none
    plot: str  # "" = none
    command: str  # the command line, for the report
    thread_note: str = field(default="")  # set at run time by the thread probe
    start_load: str = field(default="")
