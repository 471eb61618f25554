"""The grid-edge ranking loss that can be added to the projector loss when training DeepNCuts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matbackprop.experiments.bsds_ncuts.boundary_loss import (
    boundary_ranking_loss,
    edge_auc,
    grid_boundary_labels,
    grid_edge_strengths,
)


def test_edge_strengths_are_l1_differences_of_neighbours():
    Z = torch.arange(12, dtype=torch.float64).reshape(6, 2)  # a 2 x 3 grid, node n holds (2n, 2n + 1)
    g = grid_edge_strengths(Z, (2, 3))
    # 2 rows x 2 horizontal edges (|diff| = 2 per coordinate), then 1 x 3 vertical ones (6 per coordinate)
    assert g.tolist() == [4.0, 4.0, 4.0, 4.0, 12.0, 12.0, 12.0]


def test_boundary_labels_mark_edges_between_segments():
    labels = torch.tensor([0, 0, 1, 2, 2, 1])  # rows (0 0 1) and (2 2 1)
    across = grid_boundary_labels(labels, (2, 3))
    assert across.tolist() == [False, True, False, True, True, True, False]


def test_loss_prefers_the_embedding_whose_steps_follow_the_segments():
    labels = torch.tensor([0, 0, 0, 1, 1, 1] * 6)
    noise = 0.01 * torch.randn(36, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    good = torch.nn.functional.one_hot(labels).double() + noise
    # a step one column off the cut: the cut's edges are as weak as the interior, one interior column strong
    off = torch.nn.functional.one_hot((torch.arange(36) % 6 >= 2).long()).double()
    assert boundary_ranking_loss(good, labels, (6, 6)) < 0.05
    assert boundary_ranking_loss(off, labels, (6, 6)) > 0.69  # log 2: no better than a tie
    # the ordering, not the scale, is what is scored
    assert torch.allclose(
        boundary_ranking_loss(good, labels, (6, 6)), boundary_ranking_loss(7.0 * good, labels, (6, 6)), atol=1e-5
    )


def test_loss_without_both_kinds_of_edge_is_zero_with_a_zero_gradient():
    Z = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    loss = boundary_ranking_loss(Z, torch.zeros(9, dtype=torch.long), (3, 3))
    loss.backward()
    assert loss.item() == 0.0
    assert Z.grad is not None and torch.count_nonzero(Z.grad) == 0


def test_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(0)
    Z = torch.randn(20, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 1] * 2 + [2, 2, 1, 1, 1] * 2)
    assert torch.autograd.gradcheck(lambda z: boundary_ranking_loss(z, labels, (4, 5)), (Z,))


def test_edge_auc_counts_correctly_ordered_pairs_and_ties_half():
    labels = torch.tensor([0, 1, 1])  # a 1 x 3 grid: edge 0 across, edge 1 inside
    assert edge_auc(torch.tensor([[0.0], [2.0], [2.5]]), labels, (1, 3)) == 1.0  # |2-0| > |2.5-2|
    assert edge_auc(torch.tensor([[0.0], [0.5], [2.5]]), labels, (1, 3)) == 0.0
    assert edge_auc(torch.tensor([[0.0], [1.0], [2.0]]), labels, (1, 3)) == 0.5  # a tie
    assert np.isnan(edge_auc(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), (1, 3)))
    # the loss falls as the AUC rises
    better = torch.tensor([[0.0], [2.0], [2.5]], dtype=torch.float64)
    worse = torch.tensor([[0.0], [0.5], [2.5]], dtype=torch.float64)
    assert boundary_ranking_loss(better, labels, (1, 3)) < boundary_ranking_loss(worse, labels, (1, 3))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="h\\*w"):
        grid_edge_strengths(torch.zeros(5, 2), (2, 3))
    with pytest.raises(ValueError, match="labels must hold"):
        boundary_ranking_loss(torch.zeros(6, 2), torch.zeros(5, dtype=torch.long), (2, 3))
    with pytest.raises(ValueError, match="tau"):
        boundary_ranking_loss(torch.zeros(6, 2), torch.zeros(6, dtype=torch.long), (2, 3), tau=0.0)
