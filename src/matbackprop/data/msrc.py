"""MSRC-v2 with instance-level region segmentations (Malisiewicz & Efros, BMVC 2007).

Expected layout of ``root`` (see the dataset's README.md)::

    images/<name>.png      RGB photograph
    instances/<name>.png   uint8 region-id map, ids 1..K
    labels.json            {name: [class of region 1, class of region 2, ...]}, classes 1..23

Region id ``i <= len(labels[name])`` has class ``labels[name][i - 1]``; larger ids are void
(unlabelled). :class:`MSRCRegions` drops the void regions and the regions of the rare class
``horse`` (3 regions) and re-indexes the remaining 22 classes to ``0..21`` (:data:`MSRC_CLASSES`).

The split into ``train``/``test`` is by image, stratified by file-name group
(``<group>_<k>_s``), and stored in ``splits/msrc_v2_split.json`` next to this module
(regenerate it with ``python -m matbackprop.data.make_msrc_split``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptFileError
from .locations import data_dir

__all__ = [
    "CorruptFileError",
    "MSRC_ALL_CLASSES",
    "MSRC_CLASSES",
    "MSRC_DROPPED_CLASSES",
    "DEFAULT_ROOT",
    "MSRCRegions",
    "default_split_file",
    "load_split",
    "load_labels",
    "original_to_kept",
]

#: The 23 classes of the original annotation, in order (original id = index + 1).
MSRC_ALL_CLASSES: tuple[str, ...] = (
    "building",
    "grass",
    "tree",
    "cow",
    "horse",
    "sheep",
    "sky",
    "mountain",
    "aeroplane",
    "water",
    "face",
    "car",
    "bicycle",
    "flower",
    "sign",
    "bird",
    "book",
    "chair",
    "road",
    "cat",
    "dog",
    "body",
    "boat",
)

#: Classes removed from the dataset (customarily: horse has only 3 regions).
MSRC_DROPPED_CLASSES: tuple[str, ...] = ("horse",)

#: The 22 kept classes; a region's label is an index into this tuple.
MSRC_CLASSES: tuple[str, ...] = tuple(c for c in MSRC_ALL_CLASSES if c not in MSRC_DROPPED_CLASSES)

#: ``root=None`` means the default location: ``$MSRC_V2``, else ``../shared/msrc_v2`` beside the
#: project root (see :mod:`matbackprop.data.locations`).
DEFAULT_ROOT = None

_SPLIT_RESOURCE = ("splits", "msrc_v2_split.json")

_NOT_FOUND_HELP = (
    "MSRC-v2 region dataset not found at {root!r} (resolved: {resolved}).\n"
    "It is the Microsoft Research Cambridge Object Category Image Database v2 (591 photographs) "
    "with the cleaned-up instance-level region segmentations of Malisiewicz & Efros (BMVC 2007), "
    "converted to PNG/JSON in this layout:\n"
    "    <root>/images/<name>.png      RGB images\n"
    "    <root>/instances/<name>.png   uint8 region-id maps (ids 1..K)\n"
    "    <root>/labels.json            {{name: [class id (1..23) of region 1, region 2, ...]}}\n"
    "Obtain the MSRC-v2 images from Microsoft Research Cambridge and the region segmentations from "
    "the authors of the BMVC 2007 paper, convert them to this layout, and pass the directory as "
    "MSRCRegions(root=...) or set MSRC_V2=DIR (the default, {default}, is the 'shared' folder next to "
    "the project root)."
)

# original class id (1..23) -> kept class index (0..21), or -1 for a dropped class
_ORIG_TO_KEPT = np.full(len(MSRC_ALL_CLASSES) + 1, -1, dtype=np.int64)
for _i, _c in enumerate(MSRC_ALL_CLASSES, start=1):
    if _c in MSRC_CLASSES:
        _ORIG_TO_KEPT[_i] = MSRC_CLASSES.index(_c)


def original_to_kept(class_id: int) -> int:
    """Map an original 1-based class id (1..23) to the kept 0-based index, or -1 if dropped."""
    if not 1 <= int(class_id) <= len(MSRC_ALL_CLASSES):
        raise ValueError(f"MSRC-v2 class id must be in 1..{len(MSRC_ALL_CLASSES)}, got {class_id}")
    return int(_ORIG_TO_KEPT[int(class_id)])


def default_split_file() -> Path:
    """Path of the split file shipped with the package."""
    try:
        res = resources.files("matbackprop.data")
        for part in _SPLIT_RESOURCE:
            res = res.joinpath(part)
        if res.is_file():
            return Path(str(res))
    except (ModuleNotFoundError, TypeError, NotImplementedError):  # pragma: no cover
        pass
    return Path(__file__).resolve().parent.joinpath(*_SPLIT_RESOURCE)


def load_split(split_file: str | Path | None = None) -> dict[str, Any]:
    """Load a split file ``{"seed": int, "train": [names], "test": [names]}``."""
    path = Path(split_file) if split_file is not None else default_split_file()
    if not path.is_file():
        raise FileNotFoundError(f"MSRC-v2 split file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            split = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not read MSRC-v2 split file {path}: {e}") from e
    if not (
        isinstance(split, dict)
        and all(isinstance(split.get(k), list) for k in ("train", "test"))
        and all(isinstance(n, str) for k in ("train", "test") for n in split[k])
    ):
        raise ValueError(
            f'malformed MSRC-v2 split file {path}: expected {{"seed": ..., "train": [names], "test": [names]}}'
        )
    overlap = set(split["train"]) & set(split["test"])
    if overlap:
        raise ValueError(f"malformed MSRC-v2 split file {path}: {len(overlap)} images in both sets")
    return split


def _check_root(root: str | Path | None) -> Path:
    path = data_dir("msrc_v2") if root is None else Path(root)
    if not path.is_dir():
        raise FileNotFoundError(
            _NOT_FOUND_HELP.format(root=str(path), resolved=path.resolve(), default=data_dir("msrc_v2"))
        )
    return path


def load_labels(root: str | Path | None = DEFAULT_ROOT) -> dict[str, list[int]]:
    """Read ``labels.json``: image name -> original 1-based class ids of the labelled regions."""
    path = _check_root(root) / "labels.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"MSRC-v2 labels file missing: {path} (is {str(path.parent)!r} really the MSRC-v2 region dataset?)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            labels = json.load(f)
    except (OSError, ValueError) as e:
        raise CorruptFileError(path, f"corrupt MSRC-v2 labels file {path}: {e}") from e
    if not isinstance(labels, dict):
        raise CorruptFileError(path, f"corrupt MSRC-v2 labels file {path}: expected a JSON object")
    n_classes = len(MSRC_ALL_CLASSES)
    for name, cls in labels.items():
        if not (
            isinstance(cls, list)
            and all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= n_classes for c in cls)
        ):
            raise CorruptFileError(
                path,
                f"corrupt MSRC-v2 labels file {path}: entry {name!r} must be a list of class ids in 1..{n_classes}",
            )
    return labels


def _read_png(path: Path, mode: str) -> np.ndarray:
    from .._extras import require

    Image = require("PIL.Image", extra="experiments", feature="reading MSRC-v2 images")

    if not path.is_file():
        raise FileNotFoundError(f"MSRC-v2 file missing: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if mode == "RGB":
                im = im.convert("RGB")
            elif im.mode not in ("L", "P"):
                raise ValueError(f"expected an 8-bit single-channel region-id map, got mode {im.mode}")
            arr = np.array(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise CorruptFileError(path, f"corrupt MSRC-v2 file {path}: {e}") from e
    return arr


class MSRCRegions:
    """MSRC-v2 images with their labelled regions (void and ``horse`` regions dropped).

    Each item is a dict with

    - ``image``: ``uint8`` array ``(H, W, 3)``, RGB;
    - ``masks``: ``bool`` array ``(R, H, W)``, one mask per kept labelled region (disjoint, non-empty);
    - ``labels``: ``int64`` array ``(R,)``, class indices into :data:`MSRC_CLASSES`;
    - ``name``: the image name, e.g. ``"1_1_s"``.

    ``R`` may be 0 for an image whose only labelled regions were dropped.

    Args:
        root: dataset directory (see the module docstring for the layout).
        split: ``"train"``, ``"test"`` or ``"all"`` (both, train first).
        split_file: JSON split file; default: the one shipped with the package.
    """

    def __init__(
        self,
        root: str | Path | None = DEFAULT_ROOT,
        split: str = "train",
        split_file: str | Path | None = None,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.root = _check_root(root)
        self.split = split
        self._labels = load_labels(self.root)
        split_data = load_split(split_file)
        self.seed = split_data.get("seed")
        names = split_data["train"] + split_data["test"] if split == "all" else split_data[split]
        missing = [n for n in names if n not in self._labels]
        if missing:
            raise ValueError(
                f"{len(missing)} images of the split are not in {self.root / 'labels.json'} "
                f"(e.g. {missing[:3]}); wrong split file or dataset version?"
            )
        self.names: list[str] = list(names)

    classes = MSRC_CLASSES

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def region_classes(self, name: str) -> np.ndarray:
        """Kept class indices of ``name``'s labelled regions, without reading the images."""
        kept = _ORIG_TO_KEPT[np.asarray(self._labels[name], dtype=np.int64)]
        return kept[kept >= 0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        name = self.names[index]
        image_path = self.root / "images" / f"{name}.png"
        inst_path = self.root / "instances" / f"{name}.png"
        image = _read_png(image_path, "RGB")
        inst = _read_png(inst_path, "L")
        if inst.shape != image.shape[:2]:
            raise CorruptFileError(
                inst_path,
                f"corrupt MSRC-v2 file {inst_path}: region map {inst.shape} does not match "
                f"image {image.shape[:2]} of {image_path}",
            )
        orig = np.asarray(self._labels[name], dtype=np.int64)
        kept = _ORIG_TO_KEPT[orig]
        region_ids = np.flatnonzero(kept >= 0) + 1  # 1-based ids of kept labelled regions
        masks = inst[None, :, :] == region_ids.astype(np.uint8)[:, None, None]
        empty = ~masks.reshape(len(region_ids), -1).any(axis=1)
        if empty.any():
            raise CorruptFileError(
                inst_path,
                f"corrupt MSRC-v2 file {inst_path}: labelled region ids {region_ids[empty].tolist()} "
                "do not occur in the region map",
            )
        return {
            "image": image,
            "masks": masks,
            "labels": kept[region_ids - 1].astype(np.int64),
            "name": name,
        }

    def __repr__(self) -> str:
        return f"MSRCRegions(root={str(self.root)!r}, split={self.split!r}, images={len(self)})"
