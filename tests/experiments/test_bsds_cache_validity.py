"""The score cache of a trained row follows its model's weights, its row setting (hierarchy or
combination) and the embedding stride: kept while they are unchanged, moved aside and recomputed when
one changes."""

import hashlib
import json

import torch

from matbackprop.experiments.bsds_ncuts.cache_validity import (
    MODEL_MARKER,
    STRIDE_RECORD,
    UNRECORDED_STRIDE,
    check_cache,
    file_fingerprint,
    weights_fingerprint,
)
from matbackprop.experiments.bsds_ncuts.combination import Combination
from matbackprop.experiments.bsds_ncuts.hierarchy_choice import DEFAULT_HIERARCHY, Hierarchy
from matbackprop.segmentation.scores import ScoreCache
from matbackprop.train import save_checkpoint


def _save_run(run, weight=1.0, threads=1):
    run.mkdir(exist_ok=True)
    state = {"head.weight": torch.full((3, 2), weight), "scales": torch.ones(2, dtype=torch.float64)}
    save_checkpoint(run / "model.pt", {"model": state, "net_config": {"k": 4}, "train": {"threads": threads}})


def _cached_run(tmp_path):
    run = tmp_path / "run"
    _save_run(run)
    root = tmp_path / "cache"
    cache = ScoreCache(root, "DeepNCuts")
    cache.dir.mkdir(parents=True)
    (cache.dir / "100007.npz").write_bytes(b"scores")
    return run, root, cache


def _stale(root):
    return [p.name.split(".stale-")[0] for p in root.glob("*.stale-*")]


def test_weights_fingerprint_ignores_the_training_record_but_not_the_weights(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _save_run(a, threads=1)
    _save_run(b, threads=2)
    _save_run(c, weight=1.0 + 2**-20)
    assert file_fingerprint(a) != file_fingerprint(b)
    assert weights_fingerprint(a) == weights_fingerprint(b)
    assert weights_fingerprint(a) != weights_fingerprint(c)


def test_cache_made_before_settings_were_recorded_counts_as_the_defaults(tmp_path):
    run, root, cache = _cached_run(tmp_path)
    logs = []
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY)  # first sight: records the model
    (cache.dir / "hierarchy.json").unlink()  # as a cache written before the settings were recorded
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY)
    assert (cache.dir / "100007.npz").is_file() and logs == []
    assert Hierarchy(**json.loads((cache.dir / "hierarchy.json").read_text())) == DEFAULT_HIERARCHY
    other = Hierarchy(4.0, 1.0, False)
    check_cache(cache, root, run, logs.append, other)
    assert not (cache.dir / "100007.npz").exists(), "scores of other settings must be recomputed"
    assert _stale(root) == [cache.dir.name]
    assert logs and "hierarchy settings changed" in logs[0]
    assert Hierarchy(**json.loads((cache.dir / "hierarchy.json").read_text())) == other
    (cache.dir / "100007.npz").write_bytes(b"new scores")
    check_cache(cache, root, run, logs.append, other)  # same settings, same model: kept
    assert (cache.dir / "100007.npz").read_bytes() == b"new scores"


def test_same_weights_saved_again_keep_the_cache_other_weights_do_not(tmp_path):
    run, root, cache = _cached_run(tmp_path)
    logs = []
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY)
    _save_run(run, threads=4)  # new bytes, same weights
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY)
    assert (cache.dir / "100007.npz").is_file() and logs == []
    _save_run(run, weight=2.0)
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY)
    assert not (cache.dir / "100007.npz").exists() and _stale(root) == [cache.dir.name]
    assert logs == ["DeepNCuts: model.pt changed since its cached scores; recomputing"]


def test_marker_of_the_file_bytes_is_accepted_and_upgraded(tmp_path):
    run, root, cache = _cached_run(tmp_path)
    old = hashlib.sha256((run / "model.pt").read_bytes()).hexdigest()[:16]
    (cache.dir / MODEL_MARKER).write_text(old + "\n")  # as written before weight hashes
    logs = []
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY)
    assert (cache.dir / "100007.npz").is_file() and logs == []
    assert (cache.dir / MODEL_MARKER).read_text().strip() == weights_fingerprint(run)


def test_combination_cache_follows_its_setting(tmp_path):
    run, root, cache = _cached_run(tmp_path)
    logs = []
    first, second = Combination(0.95, oriented=False), Combination(0.9, oriented=True)
    check_cache(cache, root, run, logs.append, first)
    assert (cache.dir / "100007.npz").is_file() and logs == []
    check_cache(cache, root, run, logs.append, first)
    assert (cache.dir / "100007.npz").is_file() and logs == []
    check_cache(cache, root, run, logs.append, second)
    assert not (cache.dir / "100007.npz").exists()
    assert logs == ["DeepNCuts: its combination settings changed since its cached scores; recomputing"]
    assert Combination(**json.loads((cache.dir / "combination.json").read_text())) == second


def test_combination_cache_without_a_record_is_recomputed(tmp_path):
    run, root, cache = _cached_run(tmp_path)
    (cache.dir / MODEL_MARKER).write_text(weights_fingerprint(run) + "\n")  # an older combination cache
    logs = []
    check_cache(cache, root, run, logs.append, Combination(0.95))
    assert not (cache.dir / "100007.npz").exists() and _stale(root) == [cache.dir.name]


def test_cache_follows_the_embedding_stride(tmp_path):
    run, root, cache = _cached_run(tmp_path)
    logs = []
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY)  # default: the stride of unrecorded caches
    (cache.dir / STRIDE_RECORD).unlink()  # as a cache written before strides were recorded
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY, stride=UNRECORDED_STRIDE)
    assert (cache.dir / "100007.npz").is_file() and logs == []
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY, stride=1)
    assert not (cache.dir / "100007.npz").exists(), "scores of another stride must be recomputed"
    assert _stale(root) == [cache.dir.name]
    assert logs == [
        f"DeepNCuts: the embedding stride changed ({UNRECORDED_STRIDE} -> 1) since its cached scores; recomputing"
    ]
    assert (cache.dir / STRIDE_RECORD).read_text().strip() == "1"
    (cache.dir / "100007.npz").write_bytes(b"stride-1 scores")
    check_cache(cache, root, run, logs.append, DEFAULT_HIERARCHY, stride=1)  # same stride: kept
    assert (cache.dir / "100007.npz").read_bytes() == b"stride-1 scores" and len(logs) == 1
