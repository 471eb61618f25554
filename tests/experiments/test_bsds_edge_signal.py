"""The edge signal of the combination and edges rows: the val choice file, the rule, the mixed UCMs."""

import json

import numpy as np
import pytest
import torch

import matbackprop as mb
from matbackprop import segmentation
from matbackprop.experiments.bsds_ncuts.combination import Combination, combined_ucms
from matbackprop.experiments.bsds_ncuts.edge_signal_choice import choose_signal, load_edge_signal


def test_choice_file_must_come_from_val_and_name_a_signal(tmp_path):
    assert load_edge_signal(tmp_path / "absent.json") == "fused"  # the table's first protocol
    path = tmp_path / "signal.json"
    path.write_text(json.dumps({"split": "val", "chosen": "sharp"}))
    assert load_edge_signal(path) == "sharp"
    path.write_text(json.dumps({"split": "test", "chosen": "sharp"}))
    with pytest.raises(ValueError, match="val split"):
        load_edge_signal(path)
    path.write_text(json.dumps({"split": "val", "chosen": "thin"}))
    with pytest.raises(ValueError, match="not one of"):
        load_edge_signal(path)


def test_rule_takes_the_better_covering_and_keeps_fused_on_ties():
    assert choose_signal({"fused": 0.60, "sharp": 0.61}) == "sharp"
    assert choose_signal({"fused": 0.61, "sharp": 0.60}) == "fused"
    assert choose_signal({"fused": 0.60781, "sharp": 0.60784}) == "fused"  # equal to 4 decimals
    with pytest.raises(ValueError, match="no score"):
        choose_signal({"fused": 0.6})


def test_sharp_combination_reads_its_arcs_from_the_sharpened_mix():
    F = torch.full((64, 2), 0.05, dtype=torch.float64)  # an 8 x 8 grid: left half, right half
    F[torch.arange(64) % 8 < 4, 0] += 1.0
    F[torch.arange(64) % 8 >= 4, 1] += 1.0
    Z, mu = mb.ncut_embedding(F, 2, return_eigenvalues=True)
    x = np.arange(16.0)
    fused = np.zeros((16, 16))
    multiscale = np.tile(np.exp(-0.5 * (x - 4) ** 2 / 2.0), (16, 1)).T  # a blurred horizontal edge
    sharp_setting = Combination(0.5, False, edges="sharp")
    with pytest.raises(ValueError, match="multi-scale"):
        combined_ucms(Z, mu, fused, (8, 8), (16, 16), [sharp_setting])
    got_fused, got_sharp = combined_ucms(
        Z, mu, fused, (8, 8), (16, 16), [Combination(0.5, False), sharp_setting], multiscale=multiscale
    )
    boundary, _ = segmentation.embedding_boundaries(Z, mu, (8, 8), (16, 16))
    mixed = segmentation.combine_boundaries([boundary, multiscale], [0.5, 0.5])
    arcs = segmentation.combine_boundaries([boundary, segmentation.sharpened_edges(multiscale)], [0.5, 0.5])
    np.testing.assert_array_equal(got_sharp, segmentation.ultrametric_contour_map(mixed, arc_strength=arcs))
    # the fused setting ignores the multi-scale map: its mix has the cut only
    np.testing.assert_array_equal(
        got_fused, segmentation.ultrametric_contour_map(segmentation.combine_boundaries([boundary, fused], [0.5, 0.5]))
    )
