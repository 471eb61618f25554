"""Suite-wide pytest configuration: say at the top of a run where the real datasets were looked for."""

from __future__ import annotations

from matbackprop.data.locations import DATASETS, data_dir


def pytest_report_header(config) -> list[str]:
    lines = []
    for name, env in DATASETS.items():
        path = data_dir(name)
        state = "found" if path.is_dir() else f"absent: tests marked 'data' that need it are skipped (set {env}=DIR)"
        lines.append(f"dataset {name}: {path} ({state})")
    return lines
