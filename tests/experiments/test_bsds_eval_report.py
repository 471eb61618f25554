"""``eval ncuts`` outputs from cached per-image scores: JSON summary, per-image JSON, table, seed stats."""

import argparse
import json

import numpy as np
import pytest

from matbackprop.metrics import HumanBoundaries, collect_regions, evaluate_human_regions
from matbackprop.segmentation.scores import ScoreCache, score_ucm


def _image(seed):
    rng = np.random.default_rng(seed)
    h, w = 12, 16
    cut = int(rng.integers(5, 11))
    gt = np.ones((h, w), dtype=np.int32)
    gt[:, cut:] = 2
    gt2 = gt.copy()
    gt2[: h // 2, :cut] = 3
    u = np.zeros((2 * h + 1, 2 * w + 1), dtype=np.float32)
    u[:, 2 * cut] = rng.uniform(0.3, 0.9)  # the true contour, at a random strength
    u[h, : 2 * cut] = rng.uniform(0.1, 0.5)
    bd = [np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)]
    bd[0][:, cut - 1] = bd[1][:, cut - 1] = 1
    return u, [gt, gt2], bd


@pytest.fixture
def cached(tmp_path):
    root = tmp_path / "cache" / "test"
    ids = ["a", "b", "c"]
    runs = []
    for seed in range(2):
        run = tmp_path / "runs" / f"seed{seed}"
        run.mkdir(parents=True)
        runs.append(run)
    human = ScoreCache(root, "human (leave one out)")
    for k, i in enumerate(ids):
        u, gts, bd = _image(k)
        human.put(i, evaluate_human_regions(gts))
        for s, run in enumerate(runs):
            # seed 1 sees a slightly blurred map: different, but valid, scores
            r, b = score_ucm(np.clip(u * (1.0 - 0.3 * s), 0, 1), gts, HumanBoundaries(bd) if k < 2 else None)
            ScoreCache(root, f"G ({run.name})").put(i, r, b)
    return root, ids, runs


def test_write_outputs(cached, tmp_path):
    from matbackprop.experiments.bsds_ncuts.report import summarise, write_outputs

    root, ids, runs = cached
    args = argparse.Namespace(
        split="test",
        results=str(tmp_path / "res" / "b.json"),
        per_image=None,
        report=str(tmp_path / "r.md"),
        figures=str(tmp_path / "fig"),
        data="unused",
    )
    names = [f"G ({r.name})" for r in runs]
    payload = write_outputs(args, ids, root, names, {"G": runs}, human=True, seconds=1.0)
    saved = json.loads((tmp_path / "res" / "b.json").read_text())
    assert saved["methods"].keys() == set(names)
    s0, have = summarise(ScoreCache(root, names[0]), ids)
    assert have == ids and s0["boundary_images"] == 2  # the third image has no boundary counts
    assert saved["methods"][names[0]]["covering_ods"] == pytest.approx(s0["covering_ods"])
    # the group row: mean and sample std (ddof = 1) over the two seeds
    c = [saved["methods"][n]["covering_ods"] for n in names]
    g = saved["groups"]["G (2 seeds)"]["covering_ods"]
    assert g["mean"] == pytest.approx(np.mean(c)) and g["std"] == pytest.approx(np.std(c, ddof=1))
    # per image: best threshold and its covering
    per = json.loads((tmp_path / "res" / "b_per_image.json").read_text())["methods"][names[0]]
    assert set(per) == set(ids) and 0 < per["a"]["covering"] <= 1 and 0 < per["a"]["covering_threshold"] < 1
    # human row: leave-one-out, pooled
    regs = [r for i in ids for r in ScoreCache(root, "human (leave one out)").get(i)[0]]
    assert payload["human"]["covering"] == pytest.approx(collect_regions(regs).cover_ods)
    text = (tmp_path / "r.md").read_text()
    assert "| G (seed0) | 3 (2) |" in text and "G (2 seeds)" in text and "quoted" in text
    # each run gets its covering-ODS threshold for `matbackprop segment`
    t = json.loads((runs[0] / "ucm_threshold.json").read_text())
    assert t == {
        "covering_ods_threshold": pytest.approx(s0["covering_threshold"]),
        "split": "test",
        "hierarchy": {"sigma": 2.0, "power": 0.5, "oriented": True},  # no choice file: the defaults
        "stride": 4,
        "min_area": 0,
    }
    assert saved["hierarchy"]["ncuts"] == {"G": t["hierarchy"]} and saved["hierarchy"]["ncuts_file"] is None
    assert saved["hierarchy"]["stride"] == {"G": 4}


def test_rows_with_different_boundary_images_are_compared_on_the_shared_ones(cached, tmp_path):
    from matbackprop.experiments.bsds_ncuts.report import write_outputs
    from matbackprop.metrics import collect_boundaries

    root, ids, runs = cached
    names = [f"G ({r.name})" for r in runs]
    seed1 = ScoreCache(root, names[1])
    regions, _, _ = seed1.get("b")
    seed1.put("b", regions[0])  # seed1's boundary pass has not reached image b
    # seed0 misplaces image b's contour, so pooling a and b differs from pooling a alone
    u, gts, bd = _image(1)
    wrong = np.zeros_like(u)
    wrong[:, 2] = 0.8
    ScoreCache(root, names[0]).put("b", *score_ucm(wrong, gts, HumanBoundaries(bd)))
    args = argparse.Namespace(
        split="test",
        results=str(tmp_path / "b.json"),
        per_image=None,
        report=str(tmp_path / "r.md"),
        figures=str(tmp_path / "fig"),
        data="unused",
    )
    payload = write_outputs(args, ids, root, names, {"G": runs}, human=False, seconds=1.0)
    assert [payload["methods"][n]["boundary_images"] for n in names] == [2, 1]
    common = payload["boundary_on_shared_images"]
    assert common["images"] == 1 and set(common["methods"]) == set(names)
    for n in names:  # pooled over image a alone, the one both rows have
        only_a = collect_boundaries([ScoreCache(root, n).get("a")[1]])
        assert common["methods"][n]["boundary_f_ods"] == pytest.approx(only_a.ods_f)
    assert common["methods"][names[0]]["boundary_f_ods"] != payload["methods"][names[0]]["boundary_f_ods"]
    # the seed mean leaves out boundary columns that pool different images
    group = payload["groups"]["G (2 seeds)"]
    assert "covering_ods" in group and "boundary_f_ods" not in group
    assert "On the 1 images whose boundary counts every row has" in (tmp_path / "r.md").read_text()


def _run(folder, epochs: int, init_from=None) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"init_from": str(init_from) if init_from else None}))
    lines = ["event,val_loss,epoch,loss"] + [f",{10 - e},{e},{11 - e}" for e in range(1, epochs + 1)]
    (folder / "train_log.csv").write_text("\n".join(lines) + "\n")


def test_training_curves_follow_init_from(tmp_path):
    from matbackprop.experiments.bsds_ncuts.figures import run_stages, training_curves

    head, e2e, lone = tmp_path / "head" / "seed0", tmp_path / "e2e" / "seed0", tmp_path / "lone" / "seed0"
    _run(head, 3)
    _run(e2e, 2, init_from=head)
    _run(lone, 2, init_from=tmp_path / "gone")  # its starting run was deleted: the chain stops there
    assert run_stages(e2e) == [head, e2e]
    assert run_stages(lone) == [lone]
    assert run_stages(head) == [head]
    out = tmp_path / "curves.png"
    training_curves({"end to end": [e2e], "frozen": [head]}, out)
    assert out.stat().st_size > 0
