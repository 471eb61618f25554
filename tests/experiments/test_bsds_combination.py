"""The combination row's pieces: mixing an embedding's boundaries with edges, the val choice file."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import matbackprop as mb
from matbackprop import metrics, segmentation
from matbackprop.experiments.bsds_ncuts.combination import (
    Combination,
    combined_ucms,
    load_choice,
    lowest_val_loss_run,
)


def _two_halves(h=8, w=8):
    """An embedding on an h x w grid that separates the left and right halves."""
    F = torch.full((h * w, 2), 0.05, dtype=torch.float64)
    left = torch.arange(h * w) % w < w // 2
    F[left, 0] += 1.0
    F[~left, 1] += 1.0
    return mb.ncut_embedding(F, 2, return_eigenvalues=True)


def test_mixing_weight_moves_the_hierarchy_from_the_cut_to_the_edges():
    Z, mu = _two_halves()
    edges = np.zeros((16, 16))
    edges[9, :] = 1.0  # a horizontal edge the embedding does not know
    only_ncuts, only_edges, half = combined_ucms(
        Z,
        mu,
        edges,
        (8, 8),
        (16, 16),
        [Combination(0.0), Combination(1.0, oriented=False), Combination(0.5, oriented=False)],
    )
    assert only_ncuts.shape == (33, 33)
    # weight 0 is the embedding's own UCM; weight 1 (unoriented) the edges' own
    np.testing.assert_array_equal(only_ncuts, segmentation.embedding_ucm(Z, mu, (8, 8), (16, 16), power=1.0))
    np.testing.assert_array_equal(only_edges, segmentation.edges_ucm(edges))
    top_ncuts = metrics.ucm_to_segmentation(only_ncuts, 0.5 * only_ncuts.max())
    assert (top_ncuts[:, :7] == top_ncuts[0, 0]).all() and (top_ncuts[:, 9:] != top_ncuts[0, 0]).all()
    # the even mix keeps both contours: four regions at its lowest level (with the spectral orientation
    # the oriented watershed would weigh the horizontal edge by its angle to the vertical cut, i.e. drop it)
    assert np.unique(metrics.ucm_to_segmentation(half, 1e-6)).size >= 4


def test_choice_file_must_come_from_val(tmp_path):
    assert load_choice(tmp_path / "absent.json") is None
    path = tmp_path / "choice.json"
    path.write_text(json.dumps({"split": "val", "chosen": {"edge_weight": 0.75, "oriented": False, "power": 1.0}}))
    assert load_choice(path)[0] == Combination(0.75, oriented=False)
    path.write_text(json.dumps({"split": "test", "chosen": {"edge_weight": 0.75}}))
    with pytest.raises(ValueError, match="val split"):
        load_choice(path)


def test_choice_made_with_another_run_is_refused(tmp_path):
    path = tmp_path / "choice.json"
    chosen = {"edge_weight": 0.75, "oriented": False, "power": 1.0}
    path.write_text(json.dumps({"split": "val", "run": "runs/rank-e2e/seed1", "chosen": chosen}))
    rank = [Path(f"runs/rank-e2e/seed{s}") for s in range(3)]
    assert load_choice(path, rank)[0] == Combination(0.75, oriented=False)
    with pytest.raises(ValueError, match="not one of the runs"):
        load_choice(path, [Path(f"runs/long-e2e/seed{s}") for s in range(3)])


def test_seed_of_lowest_final_val_loss(tmp_path):
    losses = {"seed0": [11.0, 10.3], "seed1": [11.0, 10.1], "seed2": [11.0, 9.9, 10.2]}
    runs = []
    for seed, values in losses.items():
        run = tmp_path / seed
        run.mkdir()
        rows = ["event,val_loss,epoch"] + [f",{v},{e}" for e, v in enumerate(values)]
        (run / "train_log.csv").write_text("\n".join(rows) + "\n")
        runs.append(run)
    assert lowest_val_loss_run(runs).name == "seed1"  # the last logged value counts, not the best
