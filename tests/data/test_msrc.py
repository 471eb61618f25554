"""MSRC-v2 region dataset and its fixed train/test split."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from matbackprop.data.make_msrc_split import group_of, make_split, split_to_json
from matbackprop.data.msrc import (
    MSRC_ALL_CLASSES,
    MSRC_CLASSES,
    MSRCRegions,
    default_split_file,
    load_labels,
    load_split,
    original_to_kept,
)
from tests.markers import dataset_path, needs_dataset

DATA_ROOT = dataset_path("msrc_v2")
needs_data = needs_dataset("msrc_v2", "labels.json")


# ----------------------------------------------------------------------------- classes


def test_classes():
    assert len(MSRC_ALL_CLASSES) == 23
    assert len(MSRC_CLASSES) == 22
    assert "horse" not in MSRC_CLASSES
    assert MSRC_CLASSES[:4] == ("building", "grass", "tree", "cow")
    assert MSRC_CLASSES[4] == "sheep" and MSRC_CLASSES[-1] == "boat"
    assert original_to_kept(4) == 3  # cow
    assert original_to_kept(5) == -1  # horse
    assert original_to_kept(6) == 4  # sheep
    assert original_to_kept(23) == 21  # boat
    for i, c in enumerate(MSRC_ALL_CLASSES, start=1):
        k = original_to_kept(i)
        assert (k == -1) == (c == "horse")
        if k >= 0:
            assert MSRC_CLASSES[k] == c
    with pytest.raises(ValueError):
        original_to_kept(24)


# ----------------------------------------------------------------------------- split (no data needed)


def test_stored_split_is_regenerated_exactly():
    stored = load_split()
    names = stored["train"] + stored["test"]
    regenerated = make_split(names, seed=stored["seed"])
    assert regenerated == stored
    assert json.loads(split_to_json(regenerated)) == json.loads(default_split_file().read_text())
    # the result does not depend on the order of the names
    assert make_split(list(reversed(names)), seed=stored["seed"]) == stored


def test_stored_split_properties():
    split = load_split()
    assert set(split) == {"seed", "train", "test"}
    train, test = split["train"], split["test"]
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)
    assert len(train) + len(test) == 591
    g_train = Counter(group_of(n) for n in train)
    g_test = Counter(group_of(n) for n in test)
    assert set(g_train) == set(g_test) and len(g_train) == 20  # every group in both sets
    for g in g_train:  # 50/50 within each group
        assert abs(g_train[g] - g_test[g]) <= 1


def test_make_split_seed_and_stratification():
    names = [f"{g}_{k}_s" for g in (1, 2, 3) for k in range(1, 8 + g)]
    a = make_split(names, seed=0)
    b = make_split(names, seed=1)
    assert a["seed"] == 0 and b["seed"] == 1
    assert a != b
    assert sorted(a["train"] + a["test"]) == sorted(names)
    assert {group_of(n) for n in a["train"]} == {group_of(n) for n in a["test"]} == {"1", "2", "3"}
    with pytest.raises(ValueError):
        make_split(["not_a_name"])


# ----------------------------------------------------------------------------- error handling (synthetic data)


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def tiny_root(tmp_path: Path) -> tuple[Path, Path]:
    """Two 4x6 images: regions 1 (cow), 2 (horse), 3 (void); and 1 (sky), 2 (boat)."""
    root = tmp_path / "msrc"
    inst_a = np.array([[1, 1, 2, 2, 3, 3]] * 4, dtype=np.uint8)
    inst_b = np.array([[1, 1, 1, 2, 2, 2]] * 2 + [[2] * 6] * 2, dtype=np.uint8)
    rng = np.random.default_rng(0)
    for name, inst in (("1_1_s", inst_a), ("1_2_s", inst_b)):
        _write_png(root / "images" / f"{name}.png", rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
        _write_png(root / "instances" / f"{name}.png", inst)
    (root / "labels.json").write_text(json.dumps({"1_1_s": [4, 5], "1_2_s": [7, 23]}))
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"seed": 0, "train": ["1_1_s"], "test": ["1_2_s"]}))
    return root, split_file


def test_synthetic_dataset(tiny_root):
    root, split_file = tiny_root
    ds = MSRCRegions(root, "train", split_file=split_file)
    assert len(ds) == 1
    item = ds[0]
    assert item["name"] == "1_1_s"
    assert item["image"].shape == (4, 6, 3) and item["image"].dtype == np.uint8
    assert item["labels"].dtype == np.int64 and item["labels"].tolist() == [MSRC_CLASSES.index("cow")]
    assert item["masks"].dtype == bool and item["masks"].shape == (1, 4, 6)
    assert item["masks"][0].sum() == 8 and item["masks"][0][:, :2].all()
    item = MSRCRegions(root, "test", split_file=split_file)[0]
    assert item["labels"].tolist() == [MSRC_CLASSES.index("sky"), MSRC_CLASSES.index("boat")]
    assert item["masks"].sum(axis=(1, 2)).tolist() == [6, 18]
    assert len(MSRCRegions(root, "all", split_file=split_file)) == 2
    with pytest.raises(ValueError, match="split"):
        MSRCRegions(root, "val", split_file=split_file)


def test_missing_root_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        MSRCRegions(tmp_path / "nowhere")
    msg = str(e.value)
    assert "nowhere" in msg and "MSRC-v2" in msg and "root=" in msg and "labels.json" in msg


def test_missing_and_corrupt_files_are_named(tiny_root):
    root, split_file = tiny_root
    (root / "images" / "1_2_s.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="1_2_s.png"):
        MSRCRegions(root, "test", split_file=split_file)[0]
    (root / "instances" / "1_1_s.png").unlink()
    with pytest.raises(FileNotFoundError, match="1_1_s.png"):
        MSRCRegions(root, "train", split_file=split_file)[0]
    (root / "labels.json").write_text("{broken")
    with pytest.raises(ValueError, match="labels.json"):
        MSRCRegions(root, "train", split_file=split_file)
    (root / "labels.json").unlink()
    with pytest.raises(FileNotFoundError, match="labels.json"):
        MSRCRegions(root, "train", split_file=split_file)
    bad_split = split_file.with_name("bad.json")
    bad_split.write_text("[1, 2")
    with pytest.raises(ValueError, match="bad.json"):
        load_split(bad_split)
    with pytest.raises(FileNotFoundError, match="absent.json"):
        load_split(split_file.with_name("absent.json"))


# ----------------------------------------------------------------------------- the real data


@needs_data
def test_label_counts():
    labels = load_labels(DATA_ROOT)
    assert len(labels) == 591
    counts = Counter(c for cls in labels.values() for c in cls)
    assert sum(counts.values()) == 1871
    assert counts[MSRC_ALL_CLASSES.index("horse") + 1] == 3
    assert sum(n for c, n in counts.items() if MSRC_ALL_CLASSES[c - 1] != "horse") == 1868
    split = load_split()
    assert set(split["train"]) | set(split["test"]) == set(labels)


@needs_data
def test_dataset_regions():
    total = 0
    per_split_classes = {}
    for split in ("train", "test"):
        ds = MSRCRegions(DATA_ROOT, split)
        assert len(ds) == len(load_split()[split])
        seen = Counter()
        for item in ds:
            image, masks, labels = item["image"], item["masks"], item["labels"]
            h, w = image.shape[:2]
            assert image.dtype == np.uint8 and image.shape == (h, w, 3)
            assert masks.dtype == bool and masks.ndim == 3 and masks.shape[1:] == (h, w)
            assert labels.dtype == np.int64 and labels.shape == (masks.shape[0],)
            assert ((labels >= 0) & (labels < len(MSRC_CLASSES))).all()
            assert masks.reshape(len(masks), -1).any(axis=1).all(), item["name"]  # non-empty
            assert masks.sum(axis=0).max(initial=0) <= 1, item["name"]  # disjoint
            assert labels.tolist() == ds.region_classes(item["name"]).tolist()
            seen.update(labels.tolist())
            total += len(labels)
        per_split_classes[split] = seen
    assert total == 1868
    # every kept class occurs in both halves
    for split, seen in per_split_classes.items():
        assert set(seen) == set(range(len(MSRC_CLASSES))), split


@needs_data
def test_default_root_does_not_depend_on_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    ds = MSRCRegions(split="test")
    assert len(ds) > 0 and Path(ds.root) == dataset_path("msrc_v2")


def test_environment_variable_overrides_the_default_root(monkeypatch, tiny_root):
    root, split_file = tiny_root
    monkeypatch.setenv("MSRC_V2", str(root))
    assert Path(MSRCRegions(split="train", split_file=split_file).root) == Path(root)
    monkeypatch.setenv("MSRC_V2", str(root / "nowhere"))
    with pytest.raises(FileNotFoundError, match="set MSRC_V2=DIR"):
        MSRCRegions(split="train", split_file=split_file)


def test_corrupt_files_raise_corrupt_file_error_with_the_path(tiny_root):
    from matbackprop.data import CorruptFileError

    root, split_file = tiny_root
    image = root / "images" / "1_1_s.png"
    image.write_bytes(image.read_bytes()[:40])  # truncated PNG
    with pytest.raises(CorruptFileError, match="1_1_s.png") as e:
        MSRCRegions(root, "train", split_file=split_file)[0]
    assert e.value.path == image
    labels = root / "instances" / "1_2_s.png"
    _write_png(labels, np.zeros((4, 6, 3), dtype=np.uint8))  # an RGB label map: wrong format
    with pytest.raises(CorruptFileError, match="1_2_s.png") as e:
        MSRCRegions(root, "test", split_file=split_file)[0]
    assert e.value.path == labels
