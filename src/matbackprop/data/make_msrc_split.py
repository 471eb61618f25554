"""Regenerate the fixed MSRC-v2 train/test split (by image, stratified by file-name group).

Usage (from the project root)::

    python -m matbackprop.data.make_msrc_split [--root DIR] [--seed 0] [--out FILE]

``--root`` defaults to ``$MSRC_V2``, else ``../shared/msrc_v2`` beside the project root.

Without ``--out`` it rewrites the split file shipped with the package. The split depends only on
the set of image names and the seed: within each group ``<group>`` of names ``<group>_<k>_s``
(sorted by ``k``), the names are shuffled with ``random.Random(f"{seed}/{group}")`` and the first
``round_half_up(fraction * n)`` go to ``train``, the rest to ``test``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_SEED", "group_of", "make_split", "split_to_json", "main"]

DEFAULT_SEED = 0
_NAME_RE = re.compile(r"^(\d+)_(\d+)_s$")


def _parse(name: str) -> tuple[int, int]:
    m = _NAME_RE.match(name)
    if m is None:
        raise ValueError(f"MSRC-v2 image name {name!r} does not look like '<group>_<k>_s'")
    return int(m.group(1)), int(m.group(2))


def group_of(name: str) -> str:
    """The file-name group of an image name ``<group>_<k>_s``."""
    return str(_parse(name)[0])


def _sort_key(name: str) -> tuple[int, int]:
    return _parse(name)


def make_split(names: Iterable[str], seed: int = DEFAULT_SEED, train_fraction: float = 0.5) -> dict:
    """Deterministic split of image names, stratified by group.

    The result does not depend on the order of ``names``. Every group with at least two images
    appears in both sets. Returns ``{"seed": seed, "train": [...], "test": [...]}`` with the names
    sorted by (group, k).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError("train_fraction must be in (0, 1)")
    names = sorted(set(names), key=_sort_key)
    groups: dict[int, list[str]] = {}
    for name in names:
        groups.setdefault(_parse(name)[0], []).append(name)
    train: list[str] = []
    test: list[str] = []
    for g in sorted(groups):
        members = list(groups[g])
        random.Random(f"{seed}/{g}").shuffle(members)
        n = len(members)
        n_train = math.floor(train_fraction * n + 0.5)
        if n >= 2:
            n_train = min(max(n_train, 1), n - 1)
        train.extend(members[:n_train])
        test.extend(members[n_train:])
    return {"seed": seed, "train": sorted(train, key=_sort_key), "test": sorted(test, key=_sort_key)}


def split_to_json(split: dict[str, Any]) -> str:
    """Serialise a split the way the stored file is written."""
    return json.dumps({"seed": split["seed"], "train": split["train"], "test": split["test"]}, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    from .locations import data_dir
    from .msrc import default_split_file, load_labels

    p = argparse.ArgumentParser(prog="python -m matbackprop.data.make_msrc_split", description=__doc__.split("\n")[0])
    p.add_argument("--root", default=str(data_dir("msrc_v2")), help="MSRC-v2 directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    p.add_argument("--out", default=None, help="output JSON (default: the packaged split file)")
    args = p.parse_args(argv)

    names = load_labels(args.root).keys()
    split = make_split(names, seed=args.seed)
    out = Path(args.out) if args.out else default_split_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(split_to_json(split), encoding="utf-8")
    print(f"wrote {out}: {len(split['train'])} train, {len(split['test'])} test images (seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
