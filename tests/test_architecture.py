"""The import direction of docs/architecture.md holds: linalg -> ops -> nn -> models -> experiments, with
data, metrics and train standing alone, and no package importing another package's private modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "matbackprop"
PACKAGES = sorted(p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file())

#: package -> the packages it may import (besides itself and the top-level private helper modules).
ALLOWED = {
    "linalg": set(),
    "ops": {"linalg"},
    "nn": {"linalg", "ops"},
    "models": {"linalg", "ops", "nn"},
    "data": set(),
    "metrics": set(),
    "train": set(),
    "segmentation": {"linalg", "ops", "nn", "metrics"},
    "experiments": {"linalg", "ops", "nn", "models", "data", "metrics", "train", "segmentation"},
}


def _imports(path: Path) -> list[tuple[str, int]]:
    """``matbackprop.<...>`` modules imported by ``path`` (relative imports resolved), with line numbers."""
    module = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if module[-1] == "__init__":
        module = module[:-1]
    package = module if path.name == "__init__.py" else module[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join([*base, *(node.module.split(".") if node.module else [])])]
                if not node.module:  # from .. import x: x may be a module
                    names = [".".join([*base, a.name]) for a in node.names]
            else:
                names = [node.module or ""]
            found += [(n, node.lineno) for n in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return [(n, line) for n, line in found if n.startswith("matbackprop.")]


def _files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def test_every_package_is_placed():
    assert set(PACKAGES) <= set(ALLOWED), f"add {set(PACKAGES) - set(ALLOWED)} to ALLOWED and docs/architecture.md"


@pytest.mark.parametrize("package", [p for p in PACKAGES if p in ALLOWED])
def test_imports_go_one_way(package):
    bad = []
    for path in _files(package):
        for name, line in _imports(path):
            target = name.split(".")[1]
            if target in PACKAGES and target != package and target not in ALLOWED[package]:
                bad.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_private_module_of_another_package_is_imported(package):
    bad = []
    for path in _files(package):
        for name, line in _imports(path):
            parts = name.split(".")
            if len(parts) > 2 and parts[1] != package and any(p.startswith("_") for p in parts[2:]):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert not bad, "\n".join(bad)
