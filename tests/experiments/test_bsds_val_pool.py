"""The val choices' worker pool: each worker loads the run and the val split once, results in image order."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from matbackprop.data.bsds500 import BSDS500
from matbackprop.experiments.bsds_ncuts.val_pool import map_val_images
from matbackprop.models.ncuts_net import DeepNCutsNet, NetConfig
from matbackprop.train import save_checkpoint
from tests.markers import dataset_path

DATA = dataset_path("bsds500")  # $BSDS500, else ../shared/bsds500 beside the project root
needs_data = pytest.mark.skipif(
    not (DATA / "BSDS500").is_dir(), reason="BSDS500 not found at ../shared/bsds500 (the workers load the val split)"
)


@dataclass
class _Job:
    run: Path
    data_root: str
    offset: int


def _describe(job: _Job, model: DeepNCutsNet, data: BSDS500, index: int) -> tuple[int, str, int]:
    """What a worker saw for one image: the index (plus the job's offset), the image id, the model's k."""
    return index + job.offset, data.ids[index], model.config.k


@needs_data
@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_in_image_order_from_each_workers_model_and_data(tmp_path, workers):
    config = NetConfig(k=3, hidden=8, out_channels=8)
    run = tmp_path / "run"
    run.mkdir()
    net = DeepNCutsNet(config, pretrained=False)
    save_checkpoint(run / "model.pt", {"model": net.state_dict_to_save(), "net_config": config.to_dict()})
    logs: list[str] = []
    got = list(map_val_images(_Job(run, str(DATA), 100), _describe, 3, workers, logs.append, "test"))
    ids = BSDS500(str(DATA), "val").ids[:3]
    assert got == [(100 + i, ids[i], 3) for i in range(3)]
    assert [m.split(",")[0] for m in logs] == [f"test on val: {n}/3 images" for n in (1, 2, 3)]
