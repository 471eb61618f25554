"""DeepNCuts experiment pieces: segmentation of embeddings, classic cues, and a tiny end-to-end run."""

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from matbackprop.experiments import bsds_ncuts
from matbackprop.experiments.classic_ncuts import classic_ncut_embedding, rgb_to_lab
from matbackprop.experiments.segment import kmeans, segment_embedding

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "bsds500"


def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    found = kmeans(X, 3, seed=1)
    assert torch.cdist(found, centres).amin(0).max() < 0.1


def test_segment_embedding_levels_and_labels():
    # Two halves of a 6 x 8 grid with orthogonal embeddings: 2 clusters split them exactly.
    Z = torch.zeros(6, 8, 2)
    Z[:, :4, 0] = 1.0
    Z[:, 4:, 1] = 1.0
    levels = segment_embedding(Z.reshape(-1, 2), (6, 8), (12, 16), [2, 3])
    assert [lv.shape for lv in levels] == [(12, 16), (12, 16)]
    two = levels[0]
    assert set(np.unique(two)) == {1, 2}  # labels start at 1 (0 means unlabelled in the benchmark)
    assert len(np.unique(two[:, :8])) == 1 and len(np.unique(two[:, 8:])) == 1 and two[0, 0] != two[0, -1]


def test_rgb_to_lab_reference_values():
    lab = rgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], dtype=np.uint8))
    assert np.allclose(lab[0, 0], [100.0, 0.0, 0.0], atol=0.01)
    assert np.allclose(lab[0, 1], [0.0, 0.0, 0.0], atol=0.01)
    assert np.allclose(lab[0, 2], [53.24, 80.09, 67.20], atol=0.05)  # sRGB red, D65


def test_classic_ncuts_separates_two_colours():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[:, :30] = (200, 30, 30)
    image[:, 30:] = (30, 30, 200)
    Z, grid = classic_ncut_embedding(image, k=2, stride=5)
    seg = segment_embedding(Z, grid, image.shape[:2], [2])[0]
    assert len(np.unique(seg[:, :28])) == 1 and len(np.unique(seg[:, 32:])) == 1 and seg[0, 0] != seg[0, -1]


def test_grid_labels_samples_cell_centres_and_renumbers():
    seg = np.zeros((16, 16), dtype=np.int32) + 5
    seg[:, 8:] = 9
    labels = bsds_ncuts.grid_labels(seg, (2, 2), 8)
    assert labels.tolist() == [0, 1, 0, 1]


@pytest.mark.skipif(not (DATA / "BSDS500").is_dir(), reason="BSDS500 not found at ../shared/bsds500 (real-data smoke test)")
def test_tiny_train_and_eval_end_to_end(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite_pytorch", reason="backbone package not installed (pip extra 'experiments')")
    monkeypatch.setattr(bsds_ncuts, "QUICK_TRAIN_IMAGES", 3)
    monkeypatch.setattr(bsds_ncuts, "QUICK_TEST_IMAGES", 2)
    parser = argparse.ArgumentParser()
    bsds_ncuts.add_train_arguments(parser)
    out = tmp_path / "run"
    args = parser.parse_args(["--data", str(DATA), "--out", str(out), "--quick", "--epochs", "1", "--threads", "1"])
    assert bsds_ncuts.train(args) == 0
    assert (out / "seed0" / "model.pt").is_file()
    parser = argparse.ArgumentParser()
    bsds_ncuts.add_eval_arguments(parser)
    args = parser.parse_args(["--data", str(DATA), "--out", str(out), "--quick", "--workers", "1",
                              "--results", str(tmp_path / "r.json"), "--report", str(tmp_path / "r.md"),
                              "--figures", str(tmp_path / "fig")])
    assert bsds_ncuts.evaluate(args) == 0
    import json

    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["images"] == 2
    for name, metrics in payload["methods"].items():
        for key in ("covering_ods", "pri_ods", "vi_ods", "boundary_f_ods"):
            assert np.isfinite(metrics[key]["mean"]), (name, key)
        assert 0 < metrics["covering_ods"]["mean"] <= 1
    assert (tmp_path / "fig" / "bsds_segmentations.png").is_file()
