"""Classic normalized cuts (Shi & Malik 2000) on colour, position and texture, on a coarse grid.

Each cell of a ``stride x stride`` grid is a node described by its mean CIELAB colour, its position
and two texture cues (mean gradient magnitude and standard deviation of lightness in the cell). The
dense Gaussian affinity of the scaled cues goes through :func:`matbackprop.ncut_embedding_dense`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf

from ..ops.ncut import gaussian_affinity, ncut_embedding_dense

__all__ = ["rgb_to_lab", "grid_cues", "classic_ncut_embedding"]


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """sRGB ``uint8 (H, W, 3)`` -> CIELAB ``float (H, W, 3)`` (D65 white point)."""
    rgb = image.astype(np.float64) / 255.0
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def grid_cues(image: np.ndarray, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Per-cell cues ``(h*w, 7)``: Lab colour (3), position (2), gradient magnitude, lightness std."""
    lab = torch.from_numpy(rgb_to_lab(image)).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    light = lab[:, :1]
    gy, gx = torch.gradient(light[0, 0])
    grad = torch.sqrt(gx * gx + gy * gy)[None, None]

    def pool(t: torch.Tensor) -> torch.Tensor:
        return nnf.avg_pool2d(t, stride, stride, ceil_mode=True)

    colour = pool(lab)
    texture = torch.cat([pool(grad), (pool(light * light) - pool(light) ** 2).clamp_min(0).sqrt()], dim=1)
    h, w = colour.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    diag = float(np.hypot(h, w))
    position = torch.stack([ys / diag, xs / diag])[None]
    cues = torch.cat([colour, position, texture], dim=1)[0]  # (7, h, w)
    return cues.reshape(7, -1).T.contiguous(), (h, w)


def classic_ncut_embedding(
    image: np.ndarray,
    k: int = 16,
    stride: int = 8,
    sigma_colour: float = 12.0,
    sigma_position: float = 0.15,
    sigma_texture: float = 8.0,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Normalized-cuts embedding ``Z (h*w, k)`` of the image's grid from a dense Gaussian affinity
    ``W_ij = exp(-|c_i - c_j|^2 / 2 s_c^2 - |p_i - p_j|^2 / 2 s_p^2 - |t_i - t_j|^2 / 2 s_t^2)``
    (colour in Lab units, position as a fraction of the grid diagonal, texture in Lab lightness units)."""
    cues, grid = grid_cues(image, stride)
    scale = torch.tensor([sigma_colour] * 3 + [sigma_position] * 2 + [sigma_texture] * 2, dtype=torch.float64)
    W = gaussian_affinity((cues / scale).float(), 1.0)
    with torch.no_grad():
        Z = ncut_embedding_dense(W, k, check=False)
    return Z, grid
