"""The trained rows of the BSDS500 table: per-group strides, and worker processes that change nothing."""

from pathlib import Path

import numpy as np
import pytest
import torch

from matbackprop.experiments.bsds_ncuts.combination import COMBINED_SUFFIX, Combination
from matbackprop.experiments.bsds_ncuts.hierarchy_choice import Hierarchy
from matbackprop.experiments.bsds_ncuts.trained_rows import EDGES_ROW, score_trained_rows
from matbackprop.models.ncuts_net import DeepNCutsNet, NetConfig
from matbackprop.segmentation.scores import ScoreCache, method_slug
from matbackprop.train import save_checkpoint


class _Images:
    """Three small images of two coloured regions each, with two 'annotators'."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.ids = ["a", "b", "c"]
        self.items = []
        for n in range(3):
            seg = np.ones((40, 56), dtype=np.int32)
            seg[:, 20 + 6 * n :] = 2
            image = np.where(seg[..., None] == 1, [200, 60, 40], [30, 90, 210]).astype(float)
            image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
            other = seg.copy()
            other[:10] = 3
            self.items.append({"image": image, "segmentations": [seg, other]})

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def _run(tmp_path: Path, name: str, train_blocks: int, seed: int) -> Path:
    torch.manual_seed(seed)
    config = NetConfig(train_blocks=train_blocks, hidden=8, out_channels=8, k=4)
    model = DeepNCutsNet(config, scales=[1.0, 2.0, 3.0, 4.0, 5.0], pretrained=False)
    run = tmp_path / "runs" / name / "seed0"
    run.mkdir(parents=True)
    save_checkpoint(run / "model.pt", {"model": model.state_dict_to_save(), "net_config": config.to_dict()})
    return run


def _score(tmp_path: Path, runs: dict, root: Path, workers: int) -> list[str]:
    return score_trained_rows(
        runs,
        ["a", "b", "c"],
        _Images(),
        root,
        lambda m: None,
        {"frozen": Hierarchy(2.0, 0.5, False)},
        {"frozen": 4, "e2e": 1},
        ("e2e", Combination(0.5, False)),
        workers=workers,
    )


def test_worker_processes_write_what_one_process_writes(tmp_path):
    runs = {"frozen": [_run(tmp_path, "frozen", 0, 1)], "e2e": [_run(tmp_path, "e2e", 2, 2)]}
    one, two = tmp_path / "one", tmp_path / "two"
    names = _score(tmp_path, runs, one, workers=1)
    assert names == ["frozen", "e2e", "e2e" + COMBINED_SUFFIX, EDGES_ROW]
    assert _score(tmp_path, runs, two, workers=2) == names
    for name in names:
        for image_id in ("a", "b", "c"):
            u1 = np.load(one / "ucm" / method_slug(name) / f"{image_id}.npz")["ucm2"]
            u2 = np.load(two / "ucm" / method_slug(name) / f"{image_id}.npz")["ucm2"]
            assert np.array_equal(u1, u2), (name, image_id)
            r1, r2 = ScoreCache(one, name).get(image_id)[0][0], ScoreCache(two, name).get(image_id)[0][0]
            assert np.array_equal(r1.cnt_r, r2.cnt_r) and np.array_equal(r1.vi, r2.vi), (name, image_id)
    # each group's grid: the frozen run's UCM is made on the stride-4 grid, the end-to-end run's (and
    # its combination's) at full resolution; both UCMs have the image's doubled-grid size
    assert (one / method_slug("frozen") / "stride.txt").read_text().strip() == "4"
    assert (one / method_slug("e2e") / "stride.txt").read_text().strip() == "1"
    assert (one / method_slug("e2e" + COMBINED_SUFFIX) / "stride.txt").read_text().strip() == "1"
    assert np.load(one / "ucm" / method_slug("e2e") / "a.npz")["ucm2"].shape == (81, 113)
    # the same settings again: every image is done; another hierarchy for one group: its row is redone
    logs: list[str] = []
    frozen = {"frozen": Hierarchy(2.0, 0.5, False)}
    score_trained_rows(runs, ["a", "b", "c"], _Images(), one, logs.append, frozen, {"frozen": 4, "e2e": 1}, None)
    assert any("3 of 3 images done, 0 to score" in m for m in logs)
    score_trained_rows(runs, ["a", "b", "c"], _Images(), one, logs.append, {}, {"frozen": 4, "e2e": 1}, None)
    assert any("0 of 3 images done, 3 to score" in m for m in logs)


def test_a_different_stride_makes_different_ucms(tmp_path):
    runs = {"e2e": [_run(tmp_path, "e2e", 2, 2)]}
    ucm = {}
    for s in (4, 1):
        root = tmp_path / f"s{s}"
        score_trained_rows(runs, ["a"], _Images(), root, lambda m: None, {}, {"e2e": s}, None, False, 1)
        ucm[s] = np.load(root / "ucm" / method_slug("e2e") / "a.npz")["ucm2"]
    assert ucm[4].shape == ucm[1].shape
    assert not np.array_equal(ucm[4], ucm[1])
    with pytest.raises(ValueError, match="strides must be >= 1"):
        score_trained_rows(runs, ["a"], _Images(), tmp_path / "s0", lambda m: None, {}, {"e2e": 0}, None, False, 1)


def test_another_min_area_rescores_the_cached_ucms_without_embedding_again(tmp_path, monkeypatch):
    from matbackprop.experiments.bsds_ncuts import trained_rows
    from matbackprop.metrics import evaluate_ucm_regions
    from matbackprop.segmentation import remove_small_regions

    runs = {"e2e": [_run(tmp_path, "e2e", 2, 2)]}
    root = tmp_path / "root"
    args = (runs, ["a", "b"], _Images(), root, lambda m: None, {}, {"e2e": 4}, None, True, 1)
    score_trained_rows(*args)
    made = {n: np.load(root / "ucm" / method_slug(n) / "a.npz")["ucm2"] for n in ("e2e", EDGES_ROW)}

    def no_embedding(*_a, **_k):
        raise AssertionError("the cached UCMs must be scored, not made again")

    monkeypatch.setattr(trained_rows, "model_ucms", no_embedding)
    logs: list[str] = []
    score_trained_rows(*args[:4], logs.append, *args[5:], min_area=300)
    assert any("0 of 2 images done, 2 to score" in m for m in logs)
    seg = _Images()[0]["segmentations"]
    for name, ucm2 in made.items():
        assert np.array_equal(np.load(root / "ucm" / method_slug(name) / "a.npz")["ucm2"], ucm2)  # kept as made
        want = evaluate_ucm_regions(remove_small_regions(ucm2, 300), seg)
        got = ScoreCache(root, name).get("a")[0][0]
        np.testing.assert_allclose(got.cnt_r, want.cnt_r)
        np.testing.assert_allclose(got.vi, want.vi)


def test_sharp_edge_signal_feeds_both_edge_rows_and_a_change_recomputes_them(tmp_path):
    from matbackprop.experiments.bsds_ncuts.inference import embed_image_many, load_model, multiscale_edges
    from matbackprop.segmentation import edges_ucm

    runs = {"e2e": [_run(tmp_path, "e2e", 2, 2)]}
    root = tmp_path / "root"
    combo = "e2e" + COMBINED_SUFFIX

    def score(signal: str, logs: list[str]) -> dict[str, np.ndarray]:
        setting = Combination(0.5, False, edges=signal)
        score_trained_rows(
            runs, ["a"], _Images(), root, logs.append, {}, {"e2e": 1}, ("e2e", setting), True, 1, 0, signal
        )
        return {n: np.load(root / "ucm" / method_slug(n) / "a.npz")["ucm2"] for n in (combo, EDGES_ROW)}

    fused = score("fused", [])
    logs: list[str] = []
    sharp = score("sharp", logs)
    assert any("edge signal changed (fused -> sharp)" in m for m in logs)
    assert any("settings changed" in m for m in logs)  # the combination's record holds its signal
    assert (root / method_slug(EDGES_ROW) / "edge_signal.txt").read_text().strip() == "sharp"
    for name in (combo, EDGES_ROW):
        assert not np.array_equal(fused[name], sharp[name]), name
    # the edges row is the sharpened UCM of HED's mean over three scales
    model = load_model(runs["e2e"][0])
    image = _Images()[0]["image"]
    _, edges = embed_image_many({"m": model}, image, 1)
    want = edges_ucm(multiscale_edges(model, image, edges), sharpen=True)
    np.testing.assert_array_equal(sharp[EDGES_ROW], want)
    logs = []
    score("sharp", logs)  # unchanged: nothing to do
    assert any("1 of 1 images done, 0 to score" in m for m in logs)


def test_a_sharp_combination_is_not_oriented():
    with pytest.raises(ValueError, match="without orientation"):
        Combination(0.5, True, edges="sharp")
    with pytest.raises(ValueError, match="edges must be one of"):
        Combination(0.5, False, edges="blurred")
