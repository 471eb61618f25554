"""Images -> frozen EfficientNet-Lite0 features on the stride-16 grid, cached; soft masks; the PCA init.

The stem and the first ``cut`` MBConv blocks are frozen, so their output is computed once per image
(and once per horizontally flipped training image, the only augmentation) and cached under
``<out>/cache``. Masks are resized to the feature grid by area averaging (soft masks).

Cache key. A cache file is named by a hash of everything that determines its contents: the resolved
data folder, the split, the image ids, the backbone and the SHA-256 of its weights file, the input
size, the package version and :data:`FEATURES_VERSION` (bumped whenever the computation changes), plus
the cut in the name. Another ``--data``, weights file or image list therefore never reads stale
features; a cache at a lower cut with the same key is advanced through the missing blocks instead of
re-reading the images.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import nn
from tqdm import tqdm

from ...train import load_checkpoint, save_checkpoint
from .config import FEATURE_STRIDE, IMAGE_SIZE, QUICK_IMAGES

__all__ = ["FEATURES_VERSION", "cache_key", "cache_path", "feature_cache", "load_backbone", "pca_projection"]

#: Version of the cached computation; bump it when the cached tensors would change.
FEATURES_VERSION = 1
BACKBONE = "efficientnet-lite0"


def grid() -> tuple[int, int]:
    """The feature grid ``(h, w)`` of an :data:`IMAGE_SIZE` input at stride :data:`FEATURE_STRIDE`."""
    return math.ceil(IMAGE_SIZE[0] / FEATURE_STRIDE), math.ceil(IMAGE_SIZE[1] / FEATURE_STRIDE)


def select_names(names: Sequence[str], quick: bool, split: str) -> list[str]:
    """All ``names``, or with ``quick`` a few spread over the photo groups (so several classes appear)."""
    if not quick:
        return list(names)
    k = QUICK_IMAGES[split]
    step = max(1, len(names) // k)
    return list(names)[::step][:k]


def _load_images(root: str, split: str, quick: bool) -> list[dict[str, Any]]:
    """Images of ``split`` with at least one kept region: ``x (3, H, W)`` normalised and resized to
    :data:`IMAGE_SIZE`, soft ``masks (R, h, w)`` on the feature grid, ``labels (R,)``, ``name``."""
    from ...data.msrc import MSRCRegions
    from ...models.backbone import preprocess

    dataset = MSRCRegions(root, split=split)
    names = set(select_names(dataset.names, quick, split))
    items = []
    for i in tqdm(range(len(dataset)), desc=f"read {split}", unit="img", leave=False):
        if dataset.names[i] not in names or len(dataset.region_classes(dataset.names[i])) == 0:
            continue
        item = dataset[i]
        x = nnf.interpolate(
            preprocess(item["image"])[None], size=IMAGE_SIZE, mode="bilinear", align_corners=False, antialias=True
        )[0]
        # Area averaging: a cell's mask value is the fraction of its pixels in the region.
        masks = nnf.adaptive_avg_pool2d(torch.from_numpy(item["masks"]).float()[None], grid())[0]
        items.append({"x": x, "masks": masks, "labels": torch.from_numpy(item["labels"]), "name": item["name"]})
    return items


def blocks_of(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's MBConv blocks in order (block ``i`` of the flattened stages)."""
    return [block for stage in backbone.stages for block in stage]  # type: ignore[union-attr]


@torch.no_grad()
def run_blocks(x: torch.Tensor, blocks: Sequence[nn.Module], stem: nn.Module | None, batch: int = 8) -> torch.Tensor:
    """Apply ``stem`` (if any) and ``blocks`` in eval mode to ``x (N, ...)`` in chunks."""
    out = []
    for chunk in x.split(batch):
        h = stem(chunk) if stem is not None else chunk
        for block in blocks:
            h = block(h)
        out.append(h)
    return torch.cat(out)


@lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime: float) -> str:
    # size and mtime are part of the lru key: a replaced file is hashed again.
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(data: str | Path, split: str, names: Sequence[str]) -> dict[str, Any]:
    """Everything but the cut that determines a cache (hashed into its file name)."""
    from ... import __version__
    from ...models.backbone import default_weights_path

    weights = default_weights_path()
    st = weights.stat()
    return {
        "data": str(Path(data).resolve()),
        "split": split,
        "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        "n_images": len(names),
        "backbone": BACKBONE,
        "weights_sha256": _sha256(str(weights), st.st_size, st.st_mtime),
        "image_size": list(IMAGE_SIZE),
        "package_version": __version__,
        "features_version": FEATURES_VERSION,
    }


def cache_path(out: Path, key: dict[str, Any], cut: int) -> Path:
    """``<out>/cache/<split>-<n>img-<hash of key>-cut<cut>.pt``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return out / "cache" / f"{key['split']}-{key['n_images']}img-{digest}-cut{cut}.pt"


def feature_cache(
    data: str, out: str | Path, split: str, cut: int, quick: bool, backbone: nn.Module | None = None
) -> dict[str, Any]:
    """Frozen features at the input of block ``cut`` for every image of ``split`` (and of its horizontal
    flip for ``train``), with soft masks and labels, built once and stored under ``<out>/cache``.

    Returns ``{"names", "feats" (N, C, h, w), "feats_flip" | None, "masks", "labels", "seconds", "cut",
    "key"}``.
    """
    from ...data.msrc import MSRCRegions

    out = Path(out)
    names = select_names(MSRCRegions(data, split=split).names, quick, split)
    key = cache_key(data, split, names)
    path = cache_path(out, key, cut)
    if path.exists():
        cached: dict[str, Any] = load_checkpoint(path)
        return cached
    backbone = backbone if backbone is not None else load_backbone()
    blocks = blocks_of(backbone)
    started = time.perf_counter()
    lower = [c for c in range(cut - 1, -1, -1) if cache_path(out, key, c).exists()]
    if lower:
        cache: dict[str, Any] = load_checkpoint(cache_path(out, key, lower[0]))
        step = blocks[lower[0] : cut]
        cache["feats"] = run_blocks(cache["feats"], step, None)
        if cache["feats_flip"] is not None:
            cache["feats_flip"] = run_blocks(cache["feats_flip"], step, None)
    else:
        items = _load_images(data, split, quick)
        x = torch.stack([it["x"] for it in items])
        stem_blocks = blocks[:cut]
        stem: nn.Module = backbone.stem  # type: ignore[assignment]
        print(f"caching frozen backbone features of {len(items)} {split} images (stem + blocks 0..{cut - 1})")
        chunks = tqdm(x.split(8), desc=f"backbone {split}", unit="batch", leave=False)
        feats = torch.cat([run_blocks(c, stem_blocks, stem) for c in chunks])
        flips = None
        if split == "train":
            chunks = tqdm(x.split(8), desc=f"backbone {split} (flipped)", unit="batch", leave=False)
            flips = torch.cat([run_blocks(c.flip(-1), stem_blocks, stem) for c in chunks])
        cache = {
            "names": [it["name"] for it in items],
            "feats": feats,
            "feats_flip": flips,
            "masks": [it["masks"] for it in items],
            "labels": [it["labels"] for it in items],
            "seconds": 0.0,
        }
    cache["seconds"] = float(cache.get("seconds", 0.0)) + time.perf_counter() - started
    cache["cut"] = cut
    cache["key"] = key
    save_checkpoint(path, cache)
    return cache


def load_backbone() -> nn.Module:
    """The ImageNet EfficientNet-Lite0, in eval mode."""
    from ...models.backbone import efficientnet_lite0

    return efficientnet_lite0(pretrained=True).eval()


def pca_projection(feats: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1x1-conv ``(weight (c, C), bias (c,))`` projecting ``feats (N, C, h, w)`` onto their top ``c``
    principal directions, centred and scaled so the projected features have unit mean variance
    (the O2P ridge ``eps`` is then relative to an average eigenvalue of 1)."""
    X = feats.double().movedim(1, -1).reshape(-1, feats.shape[1])
    mean = X.mean(0)
    cov = (X - mean).T @ (X - mean) / (len(X) - 1)
    evals, evecs = torch.linalg.eigh(cov)
    top = evecs[:, -channels:].flip(-1).T  # (c, C), largest variance first
    # A fixed sign per direction (largest entry positive) keeps the projection reproducible.
    top = top * torch.sign(top.gather(1, top.abs().argmax(1, keepdim=True)))
    scale = evals[-channels:].mean().clamp_min(1e-12).rsqrt()
    weight = top * scale
    return weight.float(), (-weight @ mean).float()
