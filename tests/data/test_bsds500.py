"""Tests of the BSDS500 reader: a synthetic copy with the official layout, and
the real data set where it exists (``$BSDS500``, else ``<project root>/../shared/bsds500``)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from matbackprop.data import BSDS500
from matbackprop.data.bsds500 import SPLITS, load_ground_truth
from tests.markers import dataset_path, needs_dataset

SHARED = dataset_path("bsds500")


def write_ground_truth(path: Path, segs, bdrys) -> None:
    # a 1xK cell of structs, as in the official .mat files
    cell = np.empty((1, len(segs)), dtype=object)
    for k, (s, b) in enumerate(zip(segs, bdrys)):
        cell[0, k] = {"Segmentation": s.astype(np.uint16), "Boundaries": b.astype(np.uint8)}
    savemat(str(path), {"groundTruth": cell})


@pytest.fixture
def fake_root(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in {"train": 3, "val": 2, "test": 1}.items():
        img_dir = tmp_path / "BSDS500" / "images" / split
        gt_dir = tmp_path / "BSDS500" / "groundTruth" / split
        img_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        for i in range(n):
            iid = f"{split}{i}"
            Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).save(img_dir / f"{iid}.jpg")
            seg = np.ones((6, 8), int)
            seg[:, 4:] = 2
            bdry = np.zeros((6, 8), int)
            bdry[:, 3] = 1
            write_ground_truth(gt_dir / f"{iid}.mat", [seg, 3 - seg], [bdry, bdry])
    return tmp_path


def test_reads_items(fake_root):
    ds = BSDS500(fake_root, "train")
    assert len(ds) == 3
    item = ds[1]
    assert item["id"] == "train1"
    assert item["image"].shape == (6, 8, 3) and item["image"].dtype == np.uint8
    assert len(item["segmentations"]) == 2 and len(item["boundaries"]) == 2
    assert item["segmentations"][0].dtype.kind == "i"
    assert item["segmentations"][1][0, 0] == 2
    assert item["boundaries"][0].dtype == np.uint8 and item["boundaries"][0][:, 3].all()
    assert ds[-1]["id"] == "train2"
    with pytest.raises(IndexError):
        ds[3]
    assert len(BSDS500(fake_root, "val")) == 2


def test_bad_split(fake_root):
    with pytest.raises(ValueError, match="split"):
        BSDS500(fake_root, "validation")


def test_missing_root_explains_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        BSDS500(tmp_path / "nowhere", "test")
    msg = str(err.value)
    assert "BSDS500" in msg and "root" in msg and "download" in msg


def test_missing_ground_truth_names_the_file(fake_root):
    (fake_root / "BSDS500" / "groundTruth" / "train" / "train0.mat").unlink()
    with pytest.raises(FileNotFoundError, match="train0.mat"):
        BSDS500(fake_root, "train")[0]


def test_corrupt_files_name_the_file(fake_root):
    (fake_root / "BSDS500" / "groundTruth" / "train" / "train1.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="train1.mat"):
        BSDS500(fake_root, "train")[1]
    (fake_root / "BSDS500" / "images" / "train" / "train2.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(ValueError, match="train2.jpg"):
        BSDS500(fake_root, "train")[2]


def test_wrong_variable_names_the_file(tmp_path):
    p = tmp_path / "x.mat"
    savemat(str(p), {"somethingElse": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="x.mat"):
        load_ground_truth(p)


@needs_dataset("bsds500", "BSDS500")
def test_real_splits():
    for split, n in SPLITS.items():
        assert len(BSDS500(SHARED, split)) == n
    ds = BSDS500(SHARED, "val")
    item = ds[0]
    h, w, c = item["image"].shape
    assert c == 3 and {h, w} == {321, 481}
    assert 4 <= len(item["segmentations"]) <= 9
    for s, b in zip(item["segmentations"], item["boundaries"]):
        assert s.shape == (h, w) and b.shape == (h, w)
        assert s.min() >= 1 and set(np.unique(b)) <= {0, 1}


def test_corrupt_files_raise_corrupt_file_error_with_the_path(fake_root):
    from matbackprop.data import CorruptFileError

    gt = fake_root / "BSDS500" / "groundTruth" / "train" / "train0.mat"
    gt.write_bytes(gt.read_bytes()[:100])  # truncated .mat
    with pytest.raises(CorruptFileError, match="train0.mat") as e:
        BSDS500(fake_root, "train")[0]
    assert e.value.path == gt
    image = fake_root / "BSDS500" / "images" / "train" / "train1.jpg"
    image.write_bytes(image.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(CorruptFileError, match="train1.jpg") as e:
        BSDS500(fake_root, "train")[1]
    assert e.value.path == image
