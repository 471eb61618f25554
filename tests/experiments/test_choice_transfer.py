"""Val choices carried over to another protocol's runs: renamed run folders, a visible record, and the
evaluation's loaders accepting the copy for the new runs only."""

import json
from pathlib import Path

import pytest

from matbackprop.experiments.bsds_ncuts.choice_transfer import main, rename_runs, transfer_choice_file
from matbackprop.experiments.bsds_ncuts.combination import load_choice
from matbackprop.experiments.bsds_ncuts.hierarchy_choice import Hierarchy, load_hierarchies
from matbackprop.experiments.bsds_ncuts.stride_choice import load_strides

FOLDERS = {"runs/a-frozen": "runs/b-frozen", "runs/a-e2e": "runs/b-e2e"}
SETTING = {"sigma": 4.0, "power": 1.0, "oriented": False}


def _hierarchy_file(tmp_path: Path) -> Path:
    record = {
        "split": "val",
        "groups": {
            "frozen": {"folder": "runs/a-frozen", "run": "runs/a-frozen/seed2", "grid": [], "chosen": SETTING},
            "end to end": {"folder": "runs/a-e2e", "run": "runs/a-e2e/seed0", "grid": [], "chosen": SETTING},
        },
    }
    path = tmp_path / "bsds500_val_hierarchy.json"
    path.write_text(json.dumps(record))
    return path


def test_rename_runs_renames_folders_and_paths_inside_them_only():
    value = {"run": "runs/a-e2e/seed0", "folder": "runs/a-e2e", "other": "runs/a-e2e-bare/seed0", "n": 3}
    assert rename_runs(value, FOLDERS) == {
        "run": "runs/b-e2e/seed0",
        "folder": "runs/b-e2e",
        "other": "runs/a-e2e-bare/seed0",  # a folder whose name merely starts alike is another folder
        "n": 3,
    }
    assert rename_runs([["runs/a-frozen/seed1"]], FOLDERS) == [["runs/b-frozen/seed1"]]


def test_a_carried_over_hierarchy_file_serves_the_new_runs_and_says_where_it_came_from(tmp_path):
    src = _hierarchy_file(tmp_path)
    dst = tmp_path / "copy" / src.name
    record = transfer_choice_file(src, dst, FOLDERS)
    assert record["transferred_from"]["file"] == str(src)
    assert record["transferred_from"]["folders"] == FOLDERS
    assert json.loads(dst.read_text()) == record
    new = {
        "frozen": [Path("runs/b-frozen/seed0"), Path("runs/b-frozen/seed2")],
        "end to end": [Path("runs/b-e2e/seed0")],
    }
    assert load_hierarchies(dst, new) == {g: Hierarchy(**SETTING) for g in new}
    old = {"end to end": [Path("runs/a-e2e/seed0")]}
    with pytest.raises(ValueError, match="not one of this group's runs"):
        load_hierarchies(dst, old)
    assert load_hierarchies(src, old)["end to end"] == Hierarchy(**SETTING)  # the source is left as it was


def test_carried_over_stride_and_combination_files_load_for_the_new_runs(tmp_path):
    stride = {"split": "val", "groups": {"end to end": {"run": "runs/a-e2e/seed0", "hierarchy": SETTING, "chosen": 1}}}
    combo = {"split": "val", "run": "runs/a-e2e/seed0", "chosen": {"edge_weight": 0.5, "oriented": False, "power": 1.0}}
    (tmp_path / "s.json").write_text(json.dumps(stride))
    (tmp_path / "c.json").write_text(json.dumps(combo))
    main(
        [
            "--out-dir",
            str(tmp_path / "copy"),
            "--map",
            "runs/a-e2e=runs/b-e2e",
            str(tmp_path / "s.json"),
            str(tmp_path / "c.json"),
        ]
    )
    runs = [Path("runs/b-e2e/seed0"), Path("runs/b-e2e/seed1")]
    assert load_strides(tmp_path / "copy" / "s.json", {"end to end": runs}) == {"end to end": 1}
    setting, record = load_choice(tmp_path / "copy" / "c.json", runs)
    assert setting.edge_weight == 0.5 and record["run"] == "runs/b-e2e/seed0"
    with pytest.raises(ValueError, match="choose it again"):
        load_choice(tmp_path / "copy" / "c.json", [Path("runs/a-e2e/seed0")])


def test_refuses_what_cannot_be_carried_over(tmp_path):
    src = _hierarchy_file(tmp_path)
    with pytest.raises(ValueError, match="none of the folders"):
        transfer_choice_file(src, tmp_path / "x.json", {"runs/elsewhere": "runs/b"})
    test_file = tmp_path / "test.json"
    test_file.write_text(json.dumps({"split": "test", "run": "runs/a-e2e/seed0"}))
    with pytest.raises(ValueError, match="val split"):
        transfer_choice_file(test_file, tmp_path / "y.json", FOLDERS)
    copy = tmp_path / "copy.json"
    transfer_choice_file(src, copy, FOLDERS)
    with pytest.raises(ValueError, match="already a carried-over copy"):
        transfer_choice_file(copy, tmp_path / "z.json", {"runs/b-e2e": "runs/c-e2e"})
    with pytest.raises(SystemExit):
        main(["--out-dir", str(tmp_path), "--map", "no-equals-sign", str(src)])
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()
