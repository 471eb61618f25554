"""The per-group embedding stride of the BSDS500 table: the choice rule, and refusing stale choices."""

import json
from pathlib import Path

import pytest

from matbackprop.experiments.bsds_ncuts.evaluate import check_combination_stride
from matbackprop.experiments.bsds_ncuts.hierarchy_choice import DEFAULT_HIERARCHY, Hierarchy, choose
from matbackprop.experiments.bsds_ncuts.stride_choice import DEFAULT_STRIDE, load_strides


def test_a_finer_stride_must_not_lose_on_any_measure():
    # covering, PRI, VI at ODS (VI: lower is better)
    assert choose({4: (0.565, 0.802, 1.987), 1: (0.583, 0.808, 1.874)}, default=DEFAULT_STRIDE) == 1
    assert choose({4: (0.579, 0.8062, 1.912), 1: (0.593, 0.8060, 1.795)}, default=DEFAULT_STRIDE) == 4
    assert choose({4: (0.438, 0.753, 2.340), 1: (0.398, 0.732, 2.340)}, default=DEFAULT_STRIDE) == 4
    with pytest.raises(ValueError, match="default setting must be scored"):
        choose({1: (0.5, 0.8, 2.0)}, default=DEFAULT_STRIDE)


def _write(path: Path, run: str, hierarchy: Hierarchy, chosen: int, split: str = "val") -> None:
    entry = {
        "run": run,
        "hierarchy": {"sigma": hierarchy.sigma, "power": hierarchy.power, "oriented": hierarchy.oriented},
    }
    path.write_text(json.dumps({"split": split, "groups": {"frozen": {**entry, "chosen": chosen}}}))


def test_load_strides_refuses_a_choice_made_for_other_runs_or_another_hierarchy(tmp_path):
    path = tmp_path / "strides.json"
    unoriented = Hierarchy(2.0, 0.5, False)
    _write(path, "runs/rank-frozen/seed2", unoriented, 1)
    runs = {"frozen": [Path(f"runs/rank-frozen/seed{s}") for s in range(3)]}
    assert load_strides(path, runs, {"frozen": unoriented}) == {"frozen": 1}
    assert load_strides(tmp_path / "absent.json", runs) == {}
    with pytest.raises(ValueError, match="not one of this group's runs"):
        load_strides(path, {"frozen": [Path("runs/long-frozen/seed0")]})
    with pytest.raises(ValueError, match="chosen with the hierarchy"):
        load_strides(path, runs, {"frozen": DEFAULT_HIERARCHY})
    _write(path, "runs/rank-frozen/seed2", unoriented, 1, split="test")
    with pytest.raises(ValueError, match="val split"):
        load_strides(path)
    path.write_text(json.dumps({"split": "val", "groups": {"frozen": {"run": "x"}}}))
    with pytest.raises(ValueError, match="not a stride choice file"):
        load_strides(path)


def test_a_combination_is_refused_on_another_grid_than_it_was_chosen_on():
    check_combination_stride("c.json", {"stride": 1}, 1)
    check_combination_stride("c.json", {}, 4)  # chosen before strides were recorded: at stride 4
    with pytest.raises(ValueError, match="chosen with the embedding at stride 4"):
        check_combination_stride("c.json", {}, 1)
