"""The package reads like torch: `import matbackprop as mb` gives mb.nn, mb.metrics, mb.data; heavy parts load
lazily; a part that needs an optional dependency names the extra when it is used."""

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_subpackages_are_attributes():
    import matbackprop as mb

    assert mb.nn.SecondOrderPooling is not None and mb.nn.NormalizedCut is not None
    assert callable(mb.metrics.probabilistic_rand_index)
    assert mb.data.BSDS500 is not None
    assert callable(mb.logm) and callable(mb.second_order_pooling)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mb.nope  # noqa: B018


def test_import_loads_only_the_core():
    out = _run("""
        import sys
        import matbackprop as mb
        # (not tqdm: torch.hub imports it when it is installed)
        heavy = [m for m in sys.modules if m.split(".")[0] in ("scipy", "PIL", "matplotlib", "higra")
                 or m.startswith(("matbackprop.metrics", "matbackprop.data", "matbackprop.train",
                                  "matbackprop.models", "matbackprop.experiments"))]
        print(heavy)
        mb.metrics.segmentation_covering
        print("scipy" in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "False"]  # regions need numpy only


def test_missing_scipy_names_the_extra():
    # sys.modules["scipy"] = None makes every import of scipy fail, as on an install without the extra.
    out = _run("""
        import sys
        sys.modules["scipy"] = None
        import matbackprop.metrics as metrics
        import numpy as np
        print(metrics.probabilistic_rand_index(np.array([[0, 1]]), [np.array([[1, 2]])]))
        try:
            metrics.evaluate_regions
        except ImportError as e:
            print(type(e).__name__, e)
        from matbackprop.data.bsds500 import load_ground_truth
        try:
            load_ground_truth("x.mat")
        except ImportError as e:
            print(type(e).__name__, e)
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "1.0"
    assert lines[1].startswith("MissingExtraError matbackprop.metrics.evaluate_regions needs scipy")
    assert "pip install 'matbackprop[metrics]'" in lines[1]
    assert "No module named" not in out.stdout
    assert lines[2].startswith("MissingExtraError reading BSDS500 ground truth needs scipy")
    assert "matbackprop[experiments]" in lines[2]


def test_missing_tqdm_names_the_extra():
    out = _run("""
        import sys
        sys.modules["tqdm"] = None
        import matbackprop as mb
        try:
            mb.train
        except ImportError as e:
            print(type(e).__name__, e)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MissingExtraError matbackprop.train needs tqdm")
    assert "matbackprop[experiments]" in out.stdout


def test_extra_check_does_not_hide_other_import_errors(monkeypatch, tmp_path):
    from matbackprop._extras import MissingExtraError, require

    assert require("numpy", extra="x", feature="y").__name__ == "numpy"
    with pytest.raises(MissingExtraError, match=r"f needs h2_absent_pkg.*matbackprop\[metrics\]") as info:
        require("h2_absent_pkg.io", extra="metrics", feature="f")
    assert isinstance(info.value, ModuleNotFoundError) and info.value.name == "h2_absent_pkg"
    # A module that is installed but fails on a missing module of its own: that error is not renamed.
    (tmp_path / "h2_broken_pkg.py").write_text("import h2_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("h2_broken_pkg", extra="metrics", feature="f")
    assert not isinstance(info.value, MissingExtraError) and info.value.name == "h2_absent_dependency"
