"""Spectral boundaries (gPb's sPb) from eigenvector images."""

import numpy as np
import pytest
import torch

from matbackprop.segmentation import (
    combine_boundaries,
    embedding_boundaries,
    ncut_eigenvalues_from_normalized,
    oriented_gradients,
    spectral_boundaries,
    upsample_embedding,
)


def _step(h=24, w=32, col=16):
    v = np.zeros((h, w))
    v[:, col:] = 1.0
    return v


def test_oriented_gradients_peak_across_the_step():
    g = oriented_gradients(_step(), sigma=1.0, num_orientations=4)  # theta = 0, 45, 90, 135 degrees
    assert g.shape == (1, 4, 24, 32)
    centre = g[0, :, 12, 15:17].max(axis=1)
    # a vertical step: strongest along x (theta = 0), nothing along y (theta = 90 degrees)
    assert centre[0] > 0.3 and centre[2] < 1e-9
    assert centre[1] == pytest.approx(centre[0] / np.sqrt(2), rel=1e-6)
    assert g[0, 0, 12, 2] < 1e-6  # far from the step


def test_spectral_boundaries_weights_by_inverse_sqrt_eigenvalue():
    h, w = 24, 32
    constant = np.ones((h, w))
    a = _step(h, w, 10)  # step at column 10
    b = np.zeros((h, w))
    b[12:, :] = 1.0  # step at row 12
    lam = np.array([0.0, 0.01, 0.25])  # the constant (trivial) vector, then weights 10 and 2
    bnd, orient = spectral_boundaries(np.stack([constant, a, b]), lam, sigma=1.0, normalize=False)
    ga = oriented_gradients(a, 1.0)[0].max(axis=0)
    gb = oriented_gradients(b, 1.0)[0].max(axis=0)
    # away from the crossing each step contributes alone, scaled by its weight
    assert bnd[3, 9:11].max() == pytest.approx(10 * ga[3, 9:11].max(), rel=1e-6)
    assert bnd[11:13, 28].max() == pytest.approx(2 * gb[11:13, 28].max(), rel=1e-6)
    assert orient[3, 10] == pytest.approx(0.0) and orient[12, 28] == pytest.approx(np.pi / 2)
    n, _ = spectral_boundaries(np.stack([constant, a, b]), lam, sigma=1.0)
    assert n.max() == pytest.approx(1.0) and n.min() >= 0


def test_eigenvalue_floor_bounds_weights_and_conversion():
    lam = ncut_eigenvalues_from_normalized(np.array([1.0000001, 0.9, 0.5]))
    assert np.allclose(lam, [0.0, 0.1, 0.5])
    v = np.stack([np.ones((8, 8)), _step(8, 8, 4), _step(8, 8, 4)])
    bnd, _ = spectral_boundaries(v, np.array([0.0, 0.0, 0.0]), min_eigenvalue=0.04, normalize=False, sigma=1.0)
    ref, _ = spectral_boundaries(v, np.array([0.0, 0.04, 0.04]), min_eigenvalue=0.04, normalize=False, sigma=1.0)
    assert np.allclose(bnd, ref) and np.isfinite(bnd).all()


def test_constant_eigenvectors_give_zero_not_nan():
    bnd, orient = spectral_boundaries(np.ones((3, 6, 6)), np.array([0.0, 0.1, 0.2]))
    assert np.all(bnd == 0) and np.isfinite(orient).all()


@pytest.mark.parametrize(
    "vectors, values, match",
    [
        (np.ones((2, 4, 4)), np.array([0.1]), "one eigenvalue per eigenvector"),
        (np.ones((2, 4, 4)), np.array([0.1, -1.0]), "non-negative"),
        (np.full((2, 4, 4), np.nan), np.array([0.1, 0.2]), "non-finite"),
    ],
)
def test_bad_input_raises(vectors, values, match):
    with pytest.raises(ValueError, match=match):
        spectral_boundaries(vectors, values)


def test_combine_boundaries_is_a_convex_combination():
    a, b = np.zeros((4, 4)), np.ones((4, 4))
    assert np.allclose(combine_boundaries([a, b], [1.0, 3.0]), 0.75)
    with pytest.raises(ValueError):
        combine_boundaries([a, b], [0.0, 0.0])
    with pytest.raises(ValueError):
        combine_boundaries([a, 2 * b], [1.0, 1.0])


def test_embedding_boundaries_from_a_grid_embedding():
    # a 2-segment embedding on a 6 x 8 grid: indicator columns split at grid column 4
    h, w = 6, 8
    left = np.zeros((h, w))
    left[:, :4] = 1.0
    Z = torch.tensor(np.stack([np.ones(h * w), left.ravel()], axis=1))
    up = upsample_embedding(Z, (h, w), (24, 32))
    assert up.shape == (2, 24, 32)
    bnd, _ = embedding_boundaries(Z, torch.tensor([1.0, 0.9]), (h, w), (24, 32), sigma=1.0)
    cols = bnd.mean(axis=0)
    assert 14 <= int(np.argmax(cols)) <= 17  # the split sits at x = 16 on the image
    with pytest.raises(ValueError, match="h\\*w"):
        upsample_embedding(Z[:-1], (h, w), (24, 32))
