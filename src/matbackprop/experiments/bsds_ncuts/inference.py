"""Using a trained DeepNCuts run: load it, and embed any image at full resolution.

>>> model = load_model("runs/ncuts-rank-e2e-exact/seed0")     # doctest: +SKIP
>>> eigenvalues, Z, edges = embed_image(model, image)     # doctest: +SKIP

``Z (H, W, k)``: the normalized-cuts embedding with every pixel a node (the head is pointwise, so the
weights trained on the stride-4 grid apply at stride 1); ``eigenvalues (k,)``: the top-``k``
eigenvalues of ``D^{-1/2} W D^{-1/2}`` (descending; the first, about 1, belongs to the trivial
eigenvector); ``edges (H, W)``: the original HED edge probability (VGG backbone only).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ...models.ncuts_net import DeepNCutsNet, NetConfig
from ...train import load_checkpoint

__all__ = [
    "HED_SCALES",
    "load_model",
    "init_model",
    "embed_image",
    "embed_image_many",
    "embed_with_edges",
    "multiscale_edges",
]

#: Image scales whose HED edges the "sharp" edge signal averages (as HED's own multi-scale test does).
HED_SCALES = (0.5, 1.0, 1.5)


def load_model(run_dir: str | Path) -> DeepNCutsNet:
    """The network saved by ``matbackprop train ncuts`` in ``run_dir`` (a folder holding ``model.pt``,
    e.g. ``runs/ncuts/seed0``), in eval mode. The pretrained backbone weights come from their package;
    ``model.pt`` holds the trained blocks, the head and the block scales."""
    path = Path(run_dir) / "model.pt"
    state = load_checkpoint(path)
    if "net_config" not in state:
        raise ValueError(
            f"{path} was written by an older DeepNCuts (no 'net_config'); retrain with `matbackprop train ncuts`"
        )
    model = DeepNCutsNet(NetConfig(**state["net_config"]))
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    # Only the frozen pretrained blocks may be absent from the file.
    frozen = tuple(f"backbone.blocks.{i}." for i in range(model.first_trained))
    bad = [k for k in missing if not k.startswith(frozen)] + list(unexpected)
    if bad:
        raise ValueError(f"{path} does not fit the network it describes: {', '.join(bad[:5])}")
    return model.eval()


def init_model(net_config: NetConfig, scales: list[float], seed: int = 0) -> DeepNCutsNet:
    """The untrained network (random head drawn with ``seed``) with the given per-block scales (e.g. from
    an untrained run's ``model.pt``; ``matbackprop train ncuts --epochs 0`` writes one)."""
    torch.manual_seed(seed)
    model = DeepNCutsNet(net_config)
    model.scales.copy_(torch.tensor(scales, dtype=torch.float32))
    return model.eval()


def embed_image(
    model: DeepNCutsNet, image: np.ndarray, stride: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(eigenvalues (k,), Z (ceil(H/stride), ceil(W/stride), k), edges (H, W) or None)`` of an RGB
    ``uint8`` image ``(H, W, 3)``; see the module docstring. ``stride`` 1 is full resolution."""
    if stride < 1:
        raise ValueError(f"embed_image: stride must be >= 1, got {stride}")
    was = model.training
    model.eval()
    try:
        return model.embed(np.asarray(image), stride=stride)
    finally:
        model.train(was)


def embed_image_many(
    models: Mapping[str, DeepNCutsNet], image: np.ndarray, stride: int | Mapping[str, int] = 1
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], torch.Tensor | None]:
    """:func:`embed_image` for several models of the same backbone at once: the pretrained backbone runs
    once (conv1-conv3 and the pristine conv4/conv5, which the untrained and frozen models use as they
    are), each end-to-end model adds only its own trained blocks. ``stride``: one for all, or one per
    name (the same model may appear under several names, e.g. at two strides). Returns ``({name:
    (eigenvalues, Z)}, edges)``; the results equal :func:`embed_image`'s."""
    if not models:
        return {}, None
    names = list(models)
    backbones = {models[n].config.backbone for n in names}
    if len(backbones) > 1:
        raise ValueError(f"embed_image_many: the models must share a backbone, got {sorted(backbones)}")
    strides = {n: stride for n in names} if isinstance(stride, int) else {n: stride[n] for n in names}
    bad = {n: s for n, s in strides.items() if s < 1}
    if bad:
        raise ValueError(f"embed_image_many: strides must be >= 1, got {bad}")
    image = np.asarray(image)
    first = models[names[0]]
    pristine = first.pristine_blocks(image)
    out = {n: models[n].embed_from_pristine(pristine, image, strides[n]) for n in names}
    return out, first.hed_edges(pristine, (image.shape[0], image.shape[1]))


def multiscale_edges(model: DeepNCutsNet, image: np.ndarray, edges: torch.Tensor) -> np.ndarray:
    """Mean over :data:`HED_SCALES` of HED's edges ``(H, W)`` of an RGB ``uint8`` image, float64 in
    [0, 1]; ``edges`` is the scale-1 map :func:`embed_image_many` already returned (not recomputed)."""
    maps = [edges if s == 1.0 else model.hed_edges_at_scale(np.asarray(image), s) for s in HED_SCALES]
    if any(m is None for m in maps):
        raise ValueError("multiscale_edges: the model has no edge output (VGG-16 / HED backbone only)")
    return np.clip(np.mean([m.double().numpy() for m in maps if m is not None], axis=0), 0.0, 1.0)


def embed_with_edges(
    model: DeepNCutsNet, image: np.ndarray, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(eigenvalues (k,), Z (h, w, k), edges (H, W))`` of one model (:func:`embed_image_many`), for the
    rows that mix the embedding with the backbone's edges: a backbone without an edge output is refused."""
    per_model, edges = embed_image_many({"run": model}, image, stride=stride)
    if edges is None:
        raise ValueError("these rows need a backbone with an edge output (VGG-16 / HED)")
    eigenvalues, Z = per_model["run"]
    return eigenvalues, Z, edges
