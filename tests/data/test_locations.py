"""Data locations: one default (``shared/`` beside the checkout) and the environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from matbackprop.data import locations

CHECKOUT = Path(__file__).resolve().parents[2]


def test_default_is_shared_beside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("BSDS500", raising=False)
    monkeypatch.delenv("MSRC_V2", raising=False)
    monkeypatch.chdir(tmp_path)  # not the working directory's ../shared
    assert locations.data_dir("bsds500") == CHECKOUT.parent / "shared" / "bsds500"
    assert locations.data_dir("msrc_v2") == CHECKOUT.parent / "shared" / "msrc_v2"


@pytest.mark.parametrize("name,env", sorted(locations.DATASETS.items()))
def test_environment_variable_wins_and_empty_is_ignored(monkeypatch, tmp_path, name, env):
    monkeypatch.setenv(env, str(tmp_path / "elsewhere"))
    assert locations.data_dir(name) == tmp_path / "elsewhere"
    assert env in locations.describe(name) and str(tmp_path / "elsewhere") in locations.describe(name)
    monkeypatch.setenv(env, "  ")
    assert locations.data_dir(name) == locations.shared_root() / name


def test_unknown_dataset_is_named():
    with pytest.raises(KeyError, match="unknown dataset 'voc'.*bsds500"):
        locations.data_dir("voc")


def test_the_readme_promises_the_same_variables():
    readme = (CHECKOUT / "README.md").read_text()
    for env in locations.DATASETS.values():
        assert f"{env}=" in readme, env
