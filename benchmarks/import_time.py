"""What ``import matbackprop`` costs beyond ``import torch``.

Each run is a fresh interpreter that imports torch (which brings numpy) and then times
``import matbackprop`` alone, in wall-clock and CPU time; the script reports the median over ``--runs``.
Two cases:

- ``bytecode``: the package's ``.pyc`` files are up to date (written first with :mod:`compileall`), as
  after ``pip install`` or any earlier run. This is what a user pays.
- ``source``: no usable bytecode, every module compiled from source in each run (a fresh checkout run
  with ``PYTHONDONTWRITEBYTECODE=1``, or right after editing a file). ``-X importtime`` shows this
  compile time as the modules' own time, so a measurement in such an environment overstates the import.

It also lists the modules that ``import matbackprop`` loads beyond those of ``import torch``: anything
that is not ``matbackprop.*`` there is a dependency the core pulls in eagerly.

    .venv/bin/python benchmarks/import_time.py            # 15 runs per case
    .venv/bin/python benchmarks/import_time.py --runs 5
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
TIMED = (
    "import time, torch, numpy; w = time.perf_counter(); c = time.process_time(); import matbackprop; "
    "print(time.perf_counter() - w, time.process_time() - c)"
)


def _env(src: Path, write_bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)  # ahead of an installed copy
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def time_import(src: Path, runs: int, write_bytecode: bool) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``import matbackprop`` with torch and numpy already imported."""
    wall, cpu = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", TIMED], env=_env(src, write_bytecode), capture_output=True, text=True, check=True
        ).stdout.split()
        wall.append(float(out[0]))
        cpu.append(float(out[1]))
    return statistics.median(wall), statistics.median(cpu)


def modules_beyond_torch(src: Path) -> list[str]:
    """Modules in ``sys.modules`` after ``import matbackprop`` that ``import torch`` alone does not load."""
    code = "import sys, {0}; print('\\n'.join(sorted(sys.modules)))"
    env = _env(src, write_bytecode=True)
    loaded = {
        m: set(
            subprocess.run(
                [sys.executable, "-c", code.format(m)], env=env, capture_output=True, text=True, check=True
            ).stdout.split()
        )
        for m in ("torch", "matbackprop")
    }
    return sorted(loaded["matbackprop"] - loaded["torch"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per case (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # A private copy: the source case must not find bytecode, and the checkout's own __pycache__ is untouched.
        src = Path(tmp) / "src"
        shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
        source = time_import(src, args.runs, write_bytecode=False)
        compileall.compile_dir(src, quiet=1)
        bytecode = time_import(src, args.runs, write_bytecode=True)
        extra = modules_beyond_torch(src)
    print(f"import matbackprop beyond import torch (median of {args.runs} fresh interpreters)")
    print("| case | wall ms | CPU ms |\n|---|---|---|")
    for name, (w, c) in (("bytecode (installed / warm)", bytecode), ("source (no bytecode)", source)):
        print(f"| {name} | {1e3 * w:.1f} | {1e3 * c:.1f} |")
    others = [m for m in extra if m != "matbackprop" and not m.startswith("matbackprop.")]
    print(
        f"\nmodules beyond torch: {len(extra)} ({len(extra) - len(others)} of matbackprop); others: "
        f"{', '.join(others) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
