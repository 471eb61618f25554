"""The feature cache: outputs of the pristine (frozen) backbone, computed once per image.

A training step runs only the trained backbone blocks, the head and the NCuts layer; everything below
comes from here. Each image's entry holds every block's output (float16; blocks finer than the node
grid already average-pooled to it, see :meth:`~matbackprop.models.ncuts_net.DeepNCutsNet.cacheable`), so
one cache serves the frozen, conv5-only and conv4+conv5 protocols alike.

Key. A cache folder is named by a hash of everything that determines its contents: the resolved data
folder, the split, the backbone, the SHA-256 of its weights file, the grid stride,
the package version and :data:`FEATURES_VERSION` (bumped whenever the computation changes); inside it,
each image's entry is the file ``<id>.pt``, so the image ids complete the key and a subset (``--limit``)
reuses the entries of a larger run. Another ``--data``, split, backbone or weights file never reads stale
features. Entries are
written atomically one image at a time, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from tqdm import tqdm

from ...models.ncuts_net import DeepNCutsNet, NetConfig
from ...train import load_checkpoint, save_checkpoint

__all__ = ["FEATURES_VERSION", "FeatureCache", "cache_key", "weights_file", "build_cache"]

#: Version of the cached computation; bump it when the cached tensors would change.
FEATURES_VERSION = 1


def weights_file(backbone: str) -> Path:
    """The pretrained weights file the backbone ``backbone`` loads."""
    if backbone == "vgg16":
        from ...models.hed import default_hed_weights_path

        return default_hed_weights_path()
    if backbone == "efficientnet-lite0":
        from ...models.backbone import default_weights_path

        return default_weights_path()
    raise ValueError(f"unknown backbone {backbone!r}")


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(data: str | Path, split: str, backbone: str, grid_stride: int) -> dict:
    """Everything that determines the cached features of a split (hashed into the folder name); each
    image's entry is a file named by its id, so the image ids complete the key."""
    from ... import __version__

    w = weights_file(backbone)
    st = w.stat()
    return {
        "data": str(Path(data).resolve()),
        "split": split,
        "backbone": backbone,
        "weights_sha256": _sha256(str(w), st.st_size, st.st_mtime),
        "grid_stride": grid_stride,
        "package_version": __version__,
        "features_version": FEATURES_VERSION,
    }


@dataclass
class FeatureCache:
    """A built cache: image id -> entry file; ``skipped``: ``"<file>: <reason>"`` of corrupt images left out."""

    folder: Path
    ids: list[str]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def path(self, image_id: str) -> Path:
        return self.folder / f"{image_id}.pt"

    def load(self, image_id: str) -> list[torch.Tensor]:
        """Block outputs ``(C_b, h_b, w_b)`` (float16) of one image."""
        return load_checkpoint(self.path(image_id))["blocks"]


def build_cache(
    root: str,
    split: str,
    cache_root: Path,
    backbone: str,
    grid_stride: int,
    limit: int | None = None,
    skip_corrupt: bool = False,
) -> FeatureCache:
    """The cache of the first ``limit`` images of ``split`` (all: ``None``), built where missing.

    A corrupt image or ground-truth file raises :class:`~matbackprop.data.CorruptFileError` naming it;
    with ``skip_corrupt`` it is left out and listed in ``skipped`` (remembered in the cache's meta file).
    """
    from ...data import CorruptFileError
    from ...data.bsds500 import BSDS500

    data = BSDS500(root, split)
    ids = data.ids if limit is None else data.ids[:limit]
    key = cache_key(root, split, backbone, grid_stride)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_root) / f"{backbone}_{split}_{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"key": key, "skipped": {}}
    missing = [
        i
        for i, image_id in enumerate(ids)
        if image_id not in meta["skipped"] and not (folder / f"{image_id}.pt").exists()
    ]
    if missing:
        net = DeepNCutsNet(NetConfig(backbone=backbone, train_blocks=0, grid_stride=grid_stride))
        for i in tqdm(missing, desc=f"backbone features ({split})", unit="image"):
            try:
                item = data[i]
            except CorruptFileError as e:
                if not skip_corrupt:
                    raise
                meta["skipped"][ids[i]] = f"{e.path}: {e}"
                continue
            blocks = [b.half().contiguous() for b in net.cacheable(item["image"])]
            save_checkpoint(folder / f"{item['id']}.pt", {"blocks": blocks})
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(meta_path)
    elif not meta_path.exists():
        meta_path.write_text(json.dumps(meta, indent=2))
    kept = [i for i in ids if i not in meta["skipped"]]
    return FeatureCache(folder, kept, list(meta["skipped"].values()))
