"""The one benchmark command (spectral functions, second-order pooling, normalized cuts): entry point.

The work is done by the ``spectral_bench`` package beside this file (one module per job; see its
``__init__``); ``--help`` lists the options. Examples::

    .venv/bin/python benchmarks/bench_spectral.py --threads 1                 # full run, writes docs
    .venv/bin/python benchmarks/bench_spectral.py --quick --threads 1 --markdown /tmp/b.md --plot /tmp/b.png
"""

from __future__ import annotations

import os
import sys

# The package imports the sibling ``_timing`` module as a top-level module.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spectral_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
