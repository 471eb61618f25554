"""When the per-image score cache of a trained row is still valid.

A row's cached UCMs and scores depend on the run's weights and network settings, on the row's
setting (the hierarchy of an NCuts row, :class:`.hierarchy_choice.Hierarchy`, or the mix of a
combination row, :class:`.combination.Combination`) and on the grid stride of the embedding.
:func:`check_cache` keeps a cache while all of them are what it was computed with, and otherwise
moves it aside (``<slug>.stale-<hash>``, with its UCMs) so the row is recomputed. The model is
identified by a hash of its weights and ``net_config``, not of the file: a run saved again with the
same weights (e.g. a different thread count in its training record) keeps its scores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from ...segmentation.scores import ScoreCache
from ...train.checkpoint import load_checkpoint
from .combination import Combination
from .hierarchy_choice import DEFAULT_HIERARCHY, Hierarchy

__all__ = [
    "weights_fingerprint",
    "file_fingerprint",
    "check_cache",
    "MODEL_MARKER",
    "STRIDE_RECORD",
    "UNRECORDED_STRIDE",
    "EDGE_SIGNAL_RECORD",
    "check_edge_signal",
]

#: File in a method's cache folder holding the fingerprint of the model its scores were computed with.
MODEL_MARKER = "model_sha256.txt"
#: Record of the row's setting, by kind of setting.
_RECORDS = {Hierarchy: "hierarchy.json", Combination: "combination.json"}
#: Record of the grid stride the row's embeddings were computed on.
STRIDE_RECORD = "stride.txt"
#: The stride of every cache written before strides were recorded (the only one used until then).
UNRECORDED_STRIDE = 4
#: Record of the edge signal the edges row was computed with ("fused" when absent: the only one then).
EDGE_SIGNAL_RECORD = "edge_signal.txt"


def file_fingerprint(run: Path) -> str:
    """Hash of the bytes of ``run/model.pt`` (the marker of caches written before weight hashes)."""
    return hashlib.sha256((run / "model.pt").read_bytes()).hexdigest()[:16]


def weights_fingerprint(run: Path) -> str:
    """Hash of what a UCM depends on in ``run/model.pt``: ``net_config`` and every weight tensor
    (name, dtype, shape, values), independent of the training record saved beside them."""
    state = load_checkpoint(run / "model.pt")
    h = hashlib.sha256(json.dumps(state.get("net_config", {}), sort_keys=True).encode())
    for name in sorted(state["model"]):
        t = state["model"][name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def check_cache(
    cache: ScoreCache,
    root: Path,
    run: Path,
    log: Callable[[str], None],
    setting: Hierarchy | Combination | None = None,
    stride: int = UNRECORDED_STRIDE,
) -> None:
    """Keep ``cache`` if it was computed with ``run``'s model, ``setting`` and the embedding grid
    ``stride``; else move it (and its UCMs under ``root/ucm``) aside, to be recomputed. Then record the
    current model, setting and stride."""
    fp = weights_fingerprint(run)
    marker = cache.dir / MODEL_MARKER
    record = cache.dir / _RECORDS[type(setting)] if setting is not None else None
    stride_record = cache.dir / STRIDE_RECORD
    if marker.is_file():
        old = marker.read_text().strip()
        same_model = old == fp or old == file_fingerprint(run)  # the file hash: a cache from before weight hashes
        made_with = _recorded(record, setting)
        made_at = int(stride_record.read_text()) if stride_record.is_file() else UNRECORDED_STRIDE
        reason = (
            "model.pt changed"
            if not same_model
            else f"its {record.stem} settings changed"
            if record is not None and made_with != setting
            else f"the embedding stride changed ({made_at} -> {stride})"
            if made_at != stride
            else None
        )
        if reason:
            stale = f"{old}-{hashlib.sha256(repr((made_with, made_at)).encode()).hexdigest()[:8]}"
            for d in (cache.dir, root / "ucm" / cache.dir.name):
                if d.is_dir():
                    shutil.move(str(d), str(d.with_name(f"{d.name}.stale-{stale}")))
            log(f"{cache.method}: {reason} since its cached scores; recomputing")
    cache.dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(fp + "\n")
    stride_record.write_text(f"{stride}\n")
    if record is not None and setting is not None:
        record.write_text(json.dumps(asdict(setting)) + "\n")


def _recorded(record: Path | None, setting: Hierarchy | Combination | None) -> Hierarchy | Combination | None:
    """The setting a cache says it was made with (None: no setting of this kind, or not known)."""
    if record is None or setting is None:
        return None
    if not record.is_file():
        # Hierarchy caches without a record were all made with the default (the only setting there was);
        # a combination cache without one was made with a choice no longer known: recompute it.
        return DEFAULT_HIERARCHY if isinstance(setting, Hierarchy) else None
    values = json.loads(record.read_text())
    return Hierarchy(**values) if isinstance(setting, Hierarchy) else Combination(**values)


def check_edge_signal(cache: ScoreCache, root: Path, signal: str, log: Callable[[str], None]) -> None:
    """Keep the edges row's ``cache`` if it was computed with the edge ``signal`` (caches without a
    record were made with "fused"); else move it and its UCMs aside. Then record ``signal``."""
    record = cache.dir / EDGE_SIGNAL_RECORD
    made_with = record.read_text().strip() if record.is_file() else "fused"
    if cache.dir.is_dir() and made_with != signal:
        for d in (cache.dir, root / "ucm" / cache.dir.name):
            if d.is_dir():
                aside = d.with_name(f"{d.name}.stale-{made_with}")
                if aside.is_dir():  # an older copy of the same signal: this one is newer
                    shutil.rmtree(aside)
                shutil.move(str(d), str(aside))
        log(f"{cache.method}: its edge signal changed ({made_with} -> {signal}) since its cached scores; recomputing")
    cache.dir.mkdir(parents=True, exist_ok=True)
    record.write_text(signal + "\n")
