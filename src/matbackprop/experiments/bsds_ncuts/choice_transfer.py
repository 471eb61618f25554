"""Carry val choices made for one protocol's runs over to another protocol's runs, and say so.

Every choice file (hierarchy settings, embedding stride, combination weight, smallest region) names the
run it was tuned with, and ``eval ncuts`` refuses a choice made for other runs. A protocol that differs
from the table's in one respect (``scripts/bsds_table_budget.sh``: the end-to-end arm trains conv5 only)
may instead reuse the table's choices without tuning again on val. This module writes such a copy: the
same settings, each run folder renamed through an explicit map, and a ``transferred_from`` record
(source file, folder map) so the reuse is visible in every file the evaluation reads.

Command::

    python -m matbackprop.experiments.bsds_ncuts.choice_transfer --out-dir DIR \\
        --map runs/ncuts-rank-e2e-exact=runs/ncuts-budget-e2e-exact [--map ...] FILE [FILE ...]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["rename_runs", "transfer_choice_file", "main"]


def rename_runs(value: Any, folders: Mapping[str, str]) -> Any:
    """``value`` (nested JSON) with every string that is a mapped folder, or a path inside one, renamed.

    >>> rename_runs({"run": "runs/a/seed0", "grid": [{"sigma": 2}], "note": "runs/ab"}, {"runs/a": "runs/b"})
    {'run': 'runs/b/seed0', 'grid': [{'sigma': 2}], 'note': 'runs/ab'}
    """
    if isinstance(value, dict):
        return {k: rename_runs(v, folders) for k, v in value.items()}
    if isinstance(value, list):
        return [rename_runs(v, folders) for v in value]
    if isinstance(value, str):
        for old, new in folders.items():
            old = old.rstrip("/")
            if value == old:
                return new.rstrip("/")
            if value.startswith(old + "/"):
                return new.rstrip("/") + value[len(old) :]
    return value


def transfer_choice_file(src: str | Path, dst: str | Path, folders: Mapping[str, str]) -> dict:
    """Write ``src`` (a val choice file) to ``dst`` with its run folders renamed; returns the new record.

    Raises ``ValueError`` for a file not chosen on val, or when no mapped folder occurs in it (a map
    that renames nothing would let the copy pass for a choice of the new runs by accident).
    """
    src, dst = Path(src), Path(dst)
    record = json.loads(src.read_text())
    if record.get("split") != "val":
        raise ValueError(
            f"{src}: only choices made on the val split can be carried over, it says {record.get('split')!r}"
        )
    if "transferred_from" in record:
        raise ValueError(f"{src}: already a carried-over copy; carry over its source instead")
    renamed = rename_runs(record, folders)
    if renamed == record:
        raise ValueError(f"{src}: none of the folders {sorted(folders)} occurs in it")
    renamed["transferred_from"] = {
        "file": str(src),
        "folders": dict(folders),
        "note": "the settings were chosen on val with the runs of the source file, not with these runs",
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(renamed, indent=2) + "\n")
    return renamed


def _folder_pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW run folders, got {text!r}")
    return old, new


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="val choice files (results/bsds500_val_*.json)")
    parser.add_argument("--out-dir", required=True, help="folder for the copies (same file names)")
    parser.add_argument(
        "--map", type=_folder_pair, action="append", required=True, metavar="OLD=NEW", help="run folder map"
    )
    args = parser.parse_args(argv)
    folders = dict(args.map)
    for f in args.files:
        dst = Path(args.out_dir) / Path(f).name
        transfer_choice_file(f, dst, folders)
        print(f"{f} -> {dst}")


if __name__ == "__main__":
    main()
