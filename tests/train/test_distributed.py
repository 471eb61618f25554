"""Data-parallel training: two gloo processes match one process on the same global batches."""

import socket

import pytest
import torch

from matbackprop.nn import NormalizedCut
from matbackprop.ops.ncut import projector_loss
from matbackprop.train import CSVLogger, TrainConfig, distributed, fit

dist = pytest.importorskip("torch.distributed")
if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with the gloo backend is not available in this torch build", allow_module_level=True)

NODES, FEATURES, K = 24, 4, 3


class TinyNCuts(torch.nn.Module):
    """A linear map, a ReLU and the normalized-cuts layer: the DeepNCuts pipeline in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(FEATURES, 6)
        self.ncut = NormalizedCut(K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ncut(torch.relu(self.proj(x)) + 0.1)


def _samples(n: int = 11, nan_at: int = 4) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """(features, labels, loss factor); the factor NaN poisons the step holding that sample, which
    must then be skipped on every rank."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        labels = torch.arange(NODES) * 3 // NODES  # three segments
        x = torch.randn(NODES, FEATURES, generator=g, dtype=torch.float64) + labels[:, None].double()
        out.append((x, labels, float("nan") if i == nan_at else 1.0))
    return out


def _train(out_dir, rank: int = 0, world: int = 1, port: int = 0) -> None:
    """Three epochs of global batches of 5, 5 and 1 samples (the 1 leaves rank 1 with an empty slice)."""
    torch.set_num_threads(1)
    if world > 1:
        import os

        os.environ.update(
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
        )
    torch.manual_seed(0)
    model = TinyNCuts().double()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    samples = _samples()

    def batches(gen):
        order = torch.randperm(len(samples), generator=gen).tolist()
        for i in range(0, len(order), 5):
            yield [samples[j] for j in order[i : i + 5]]

    def step(batch, net):
        return torch.stack([projector_loss(net(x[None]), y[None])[0] * f for x, y, f in batch]).mean()

    fit(model, opt, step, batches, TrainConfig(epochs=3, out_dir=out_dir, seed=1, dist_backend="gloo"))
    if rank == 0:
        torch.save(model.state_dict(), out_dir / "final.pt")


def _worker(rank: int, world: int, port: int, out_dir) -> None:
    _train(out_dir, rank, world, port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_on_the_same_global_batches(tmp_path, monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    _train(tmp_path / "single")
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), tmp_path / "ddp"), nprocs=2, join=True)
    single = torch.load(tmp_path / "single" / "final.pt", weights_only=True)
    ddp = torch.load(tmp_path / "ddp" / "final.pt", weights_only=True)
    for name in single:
        assert torch.allclose(single[name], ddp[name], rtol=0, atol=1e-10), name
        assert not torch.equal(single[name], _initial()[name]), name  # it did train
    rows = {run: [r for r in CSVLogger(tmp_path / run / "train_log.csv").read()] for run in ("single", "ddp")}
    losses = {run: [float(r["loss"]) for r in rs if r.get("loss")] for run, rs in rows.items()}
    assert losses["single"] == pytest.approx(losses["ddp"], abs=1e-10)
    events = {run: [r["event"] for r in rs if r.get("event")] for run, rs in rows.items()}
    assert len(events["single"]) == 3 and events["single"] == events["ddp"]  # the NaN batch, once per epoch
    assert [int(r["skipped"]) for r in rows["ddp"] if r.get("loss")] == [1, 1, 1]


def _initial() -> dict:
    torch.manual_seed(0)
    return TinyNCuts().double().state_dict()


@pytest.mark.parametrize("n,world", [(5, 2), (7, 3), (1, 2), (2, 4)])
def test_shards_cover_the_batch_with_weights_summing_to_one(n, world):
    batch = list(range(n))
    parts = [distributed.shard_batch(batch, r, world) for r in range(world)]
    assert sum(w for _, w in parts) == pytest.approx(1.0)
    assert [x for part, w in parts if w > 0 for x in part] == batch
    sizes = [len(p) for p, w in parts if w > 0]
    assert max(sizes) - min(sizes) <= 1
    x, y = torch.arange(n), torch.arange(n) * 2
    (xs, ys), w = distributed.shard_batch((x, y), 0, world)
    assert torch.equal(ys, 2 * xs) and w == pytest.approx(len(xs) / n)


def test_single_process_needs_no_process_group(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.init()
    assert not ctx.enabled and ctx.is_main and not dist.is_initialized()
    model = torch.nn.Linear(2, 1)
    assert distributed.wrap(model, ctx) is model
