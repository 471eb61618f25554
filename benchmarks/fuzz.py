"""Benchmark-style fuzz run: the hypothesis suite of ``tests/fuzz`` with the ``thorough`` profile.

    .venv/bin/python benchmarks/fuzz.py                 # ~16,000 generated cases, a few minutes
    .venv/bin/python benchmarks/fuzz.py --examples 100  # quicker
    .venv/bin/python benchmarks/fuzz.py --json out.json # also save counts and worst ratios

Runs pytest on ``tests/fuzz`` in a subprocess with ``MATBACKPROP_FUZZ_PROFILE=thorough`` (examples are
random, not derandomized: every run explores new cases) and one thread, then prints the number of
generated cases per function and in total, the worst measured error ratio of every bound (error
divided by its scale; the tests fail above the constants in docs/robustness.md) and the failures.
Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_CASES = 10_000


def run_suite(examples: int, extra: list[str]) -> tuple[int, dict, float]:
    """Run the fuzz tests; return (pytest status, report, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "fuzz.json"
        env = dict(
            os.environ,
            MATBACKPROP_FUZZ_PROFILE="thorough",
            MATBACKPROP_FUZZ_EXAMPLES=str(examples),
            MATBACKPROP_FUZZ_REPORT=str(report),
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        start = time.perf_counter()
        status = subprocess.call(
            [sys.executable, "-m", "pytest", "tests/fuzz", "-q", "-p", "no:cacheprovider", "-rfE", *extra],
            cwd=ROOT,
            env=env,
        )
        seconds = time.perf_counter() - start
        data = json.loads(report.read_text()) if report.exists() else {"counts": {}, "worst": {}}
    return status, data, seconds


def print_counts(counts: dict[str, int]) -> int:
    """Cases per function (first path component), and the total."""
    per_function: dict[str, int] = defaultdict(int)
    for key, n in counts.items():
        if "skipped" in key or "rejected" in key or "below_resolution" in key:
            continue  # sub-counts of cases already counted
        per_function[key.split("/")[0]] += n
    print(f"\n{'function':<36}{'cases':>8}")
    for name in sorted(per_function):
        print(f"{name:<36}{per_function[name]:>8}")
    total = sum(per_function.values())
    print(f"{'TOTAL':<36}{total:>8}")
    notes = {
        k: v for k, v in counts.items() if k not in per_function and ("skipped" in k or "rejected" in k or "below" in k)
    }
    for key, n in sorted(notes.items()):
        print(f"  of which {key}: {n}")
    return total


def print_worst(worst: dict[str, float]) -> None:
    print(f"\n{'bound (function/dtype/quantity)':<64}{'worst error / scale':>20}")
    for key in sorted(worst):
        print(f"{key:<64}{worst[key]:>20.3g}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=400, help="max_examples of a typical property (default 400)")
    parser.add_argument("--json", type=Path, help="save the counts and worst ratios here")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, e.g. -k logm")
    args = parser.parse_args()
    status, data, seconds = run_suite(args.examples, args.pytest_args)
    total = print_counts(data["counts"])
    print_worst(data["worst"])
    print(
        f"\n{total} generated cases in {seconds:.0f} s; pytest exit status {status} "
        f"({'all properties held' if status == 0 else 'FAILURES above'})"
    )
    if total < MIN_CASES and not args.pytest_args:
        print(f"note: fewer than {MIN_CASES} cases; raise --examples")
    if args.json:
        args.json.write_text(json.dumps({**data, "total": total, "seconds": seconds, "status": status}, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
