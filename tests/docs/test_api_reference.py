"""The API reference (``bash scripts/docs.sh``) builds from the docstrings with zero warnings."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import matbackprop
import matbackprop.nn

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("sphinx", reason="the API reference needs the docs extra: pip install -e .[docs]")


@pytest.mark.slow
def test_api_reference_builds_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "api"
    # The same flags as scripts/docs.sh: warnings are errors, references are checked, fresh environment.
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-E", "-q", "-b", "html"]
    cmd += ["-d", str(tmp_path / "doctrees"), str(ROOT / "docs" / "api"), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "WARNING" not in log and "ERROR" not in log, log[-5000:]

    # Zero warnings is only worth something if the pages were generated: every public name of the
    # functional API and of mb.nn is linked from the index to a documented definition.
    index = (out / "index.html").read_text(encoding="utf-8")
    for module in (matbackprop, matbackprop.nn):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):  # mb.nn, mb.linalg, mb.ops: pages of their own
                continue
            anchor = f"{obj.__module__}.{obj.__qualname__}"
            assert f'#{anchor}"' in index, f"{module.__name__}.{name} is not linked to {anchor}"
            page = out / "_generated" / f"{obj.__module__}.html"
            assert f'id="{anchor}"' in page.read_text(encoding="utf-8"), f"{anchor} is not documented"
