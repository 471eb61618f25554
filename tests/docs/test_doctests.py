"""The ``>>>`` examples in the docstrings run and print what they show (doctest), and every public
function and layer has one.

Equivalent to ``pytest --doctest-modules src/matbackprop`` minus the modules in ``NOT_IMPORTED``,
with a fixed seed and one thread per module so that the examples are deterministic.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest
import torch

import matbackprop

# Never imported here: the experiments and the command line need the real datasets, pretrained weights
# and run directories; their examples (if any) are marked `# doctest: +SKIP`.
NOT_IMPORTED = ("matbackprop.experiments", "matbackprop.cli", "matbackprop.__main__")

# Namespaces whose every public function and class must carry an example. Excluded explicitly:
# matbackprop.data (readers of the real BSDS500 / MSRC-v2 files) and matbackprop.models (pretrained
# backbones whose weights come with the experiments extra).
NEED_EXAMPLES = (
    "matbackprop",
    "matbackprop.nn",
    "matbackprop.metrics",
    "matbackprop.segmentation",
    "matbackprop.train",
)

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = ["matbackprop"]
    for info in pkgutil.walk_packages(matbackprop.__path__, prefix="matbackprop."):
        if not info.name.startswith(NOT_IMPORTED):
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        for test in tests:
            if test.examples and test.name.startswith(name):  # skip objects re-exported from elsewhere
                torch.manual_seed(0)
                runner.run(test)
    finally:
        torch.set_num_threads(threads)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name} (see the output above)"


def _public(namespace: str) -> list[tuple[str, object]]:
    try:
        module = importlib.import_module(namespace)
    except ModuleNotFoundError as exc:  # an optional part (segmentation needs the experiments extra)
        pytest.skip(f"{namespace}: {exc}")
    items = [(n, getattr(module, n)) for n in getattr(module, "__all__", [])]
    # Functions and layers (and the SpectralFunction recipe); result records (dataclasses such as
    # metrics.RegionResult) are shown in the examples of the functions that return them.
    return [(n, o) for n, o in items if inspect.isfunction(o) or _is_layer(o) or o is matbackprop.SpectralFunction]


def _is_layer(obj: object) -> bool:
    return inspect.isclass(obj) and issubclass(obj, torch.nn.Module)


@pytest.mark.parametrize("namespace", NEED_EXAMPLES)
def test_every_public_object_has_an_example(namespace: str) -> None:
    missing = [n for n, obj in _public(namespace) if ">>>" not in (inspect.getdoc(obj) or "")]
    assert not missing, f"{namespace}: no >>> example in the docstring of {', '.join(missing)}"


def test_examples_are_found() -> None:
    # The finder must see the examples of the functional API; without this a broken collection would
    # make test_docstring_examples pass vacuously.
    tests = doctest.DocTestFinder().find(importlib.import_module("matbackprop.linalg.dtypes"))
    assert sum(len(t.examples) for t in tests) >= 2
