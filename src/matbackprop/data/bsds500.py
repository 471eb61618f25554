"""Reader for the Berkeley Segmentation Data Set 500 (BSDS500).

Martin, Fowlkes, Tal & Malik, ICCV 2001; Arbelaez, Maire, Fowlkes & Malik,
TPAMI 2011. Expected layout under ``root`` (the one of the official BSR
package)::

    BSDS500/images/{train,val,test}/<id>.jpg
    BSDS500/groundTruth/{train,val,test}/<id>.mat

Each ``.mat`` holds a 1xK cell ``groundTruth`` of structs with a
``Segmentation`` (labels 1..n) and a ``Boundaries`` (0/1) map, one per
annotator. The reader never writes under ``root``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptFileError
from .locations import data_dir

__all__ = ["BSDS500", "SPLITS", "load_ground_truth", "load_image"]

#: Number of images of each split in the official release.
SPLITS = {"train": 200, "val": 100, "test": 200}

_HOW_TO_GET = (
    "BSDS500 is distributed by UC Berkeley as part of the 'BSR' package "
    "(Contour Detection and Image Segmentation Resources, Arbelaez et al. 2011); "
    "download and unpack it, then pass the folder that contains 'BSDS500/' "
    "as root=... (the folder layout is BSDS500/images/<split>/*.jpg and "
    "BSDS500/groundTruth/<split>/*.mat)."
)


def load_ground_truth(path: str | Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Read the human annotations of one image from a BSDS ``.mat`` file.

    Parameters
    ----------
    path : file holding the cell ``groundTruth``.

    Returns
    -------
    segmentations : K (H, W) int32 label maps (labels 1..n).
    boundaries : K (H, W) uint8 maps, 1 on boundaries.

    Raises
    ------
    FileNotFoundError if the file is missing; :class:`CorruptFileError` (a
    ValueError) naming the file if it cannot be read or lacks the expected fields.
    """
    from .._extras import require

    loadmat = require("scipy.io", extra="experiments", feature="reading BSDS500 ground truth").loadmat

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"BSDS500 ground-truth file not found: {p}")
    try:
        mat = loadmat(str(p))
        cell = np.asarray(mat["groundTruth"]).ravel()
        segs, bdrys = [], []
        for entry in cell:
            seg = np.asarray(entry["Segmentation"][0, 0]).astype(np.int32)
            bdry = np.asarray(entry["Boundaries"][0, 0]).astype(np.uint8)
            if seg.ndim != 2 or seg.shape != bdry.shape:
                raise ValueError("Segmentation/Boundaries shapes disagree")
            segs.append(seg)
            bdrys.append(bdry)
    except Exception as exc:  # scipy raises several kinds on corrupt files
        raise CorruptFileError(p, f"corrupt or unexpected BSDS500 ground-truth file {p}: {exc}") from exc
    if not segs:
        raise CorruptFileError(p, f"BSDS500 ground-truth file {p} has no annotations")
    return segs, bdrys


def load_image(path: str | Path) -> np.ndarray:
    """Read an RGB image as a (H, W, 3) uint8 array; :class:`CorruptFileError` names a bad file."""
    from .._extras import require

    Image = require("PIL.Image", extra="experiments", feature="reading images")

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"BSDS500 image not found: {p}")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:
        raise CorruptFileError(p, f"corrupt or unreadable BSDS500 image {p}: {exc}") from exc


class BSDS500:
    """BSDS500 split as a map-style data set (usable with torch's DataLoader).

    Parameters
    ----------
    root : folder containing ``BSDS500/``; default ``$BSDS500``, else ``../shared/bsds500`` beside
        the project root (:mod:`matbackprop.data.locations`).
    split : ``"train"`` (200 images), ``"val"`` (100) or ``"test"`` (200).

    Items are dicts with ``image`` ((H, W, 3) uint8), ``segmentations`` (K
    int32 label maps), ``boundaries`` (K uint8 maps) and ``id`` (str).
    Images are 481x321 or 321x481.
    """

    def __init__(self, root: str | Path | None = None, split: str = "train"):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        self.root = data_dir("bsds500") if root is None else Path(root)
        self.split = split
        base = self.root / "BSDS500"
        if not base.is_dir():
            raise FileNotFoundError(
                f"BSDS500 not found under {self.root.resolve()} (no 'BSDS500/' folder). " + _HOW_TO_GET
            )
        self.image_dir = base / "images" / split
        self.gt_dir = base / "groundTruth" / split
        for d in (self.image_dir, self.gt_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"BSDS500 folder missing: {d}. " + _HOW_TO_GET)
        # the id list comes from the images; a missing ground truth is
        # reported when that item is read
        self.ids = sorted(p.stem for p in self.image_dir.glob("*.jpg"))
        if not self.ids:
            raise FileNotFoundError(f"no .jpg images in {self.image_dir}. " + _HOW_TO_GET)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        iid = self.ids[index]
        segs, bdrys = load_ground_truth(self.gt_dir / f"{iid}.mat")
        image = load_image(self.image_dir / f"{iid}.jpg")
        if image.shape[:2] != segs[0].shape:
            raise CorruptFileError(
                self.gt_dir / f"{iid}.mat",
                f"image {self.image_dir / (iid + '.jpg')} has size {image.shape[:2]}, its ground truth {segs[0].shape}",
            )
        return {"image": image, "segmentations": segs, "boundaries": bdrys, "id": iid}

    def __repr__(self) -> str:
        return f"BSDS500(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
