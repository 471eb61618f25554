"""Training pipeline of the DeepO2P experiment: batches, the model and optimiser, one run, every run.

"End to end" trains the last ``trainable_blocks`` MBConv blocks of the backbone (default 3: blocks
8-10, the whole 112-channel group of the stride-16 stage), the 1x1 conv and the head, on the cached
frozen features below them (:mod:`~matbackprop.experiments.msrc_o2p.features`). The 1x1 conv of every model starts as the same PCA
projection (fitted on the frozen block-10 features of the training images, centred, scaled to unit
mean variance), so model (3) starts where model (2) is fixed. Descriptors go through a batch-norm
without affine parameters before the classifier. The learning rate decays on a cosine per epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn
from tqdm import tqdm

from ...models.deepo2p import MODEL_KINDS, RegionClassifier, build_region_classifier
from ...train import TrainConfig, distributed, fit, load_checkpoint
from ..reporting import plot_training_curves, read_train_log
from .config import ABLATIONS, FEATURE_CHANNELS, FEATURE_END, EvalConfig, O2PConfig
from .features import blocks_of, feature_cache, load_backbone, pca_projection

__all__ = ["collate", "predict", "region_metrics", "build_model", "train_one", "all_configs", "run_all"]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def collate(cache: dict[str, Any], images: torch.Tensor, flips: torch.Tensor) -> Batch:
    """Batch of images ``images (B,)`` -> ``x (B, C, h, w)``, ``masks (N, h, w)``, ``index (N,)``,
    ``labels (N,)``; an image with ``flips[i]`` uses its mirrored features and masks."""
    xs, masks, index, labels = [], [], [], []
    for b, (i, flip) in enumerate(zip(images.tolist(), flips.tolist())):
        xs.append(cache["feats_flip"][i] if flip else cache["feats"][i])
        m = cache["masks"][i]
        masks.append(m.flip(-1) if flip else m)
        index.append(torch.full((len(m),), b, dtype=torch.long))
        labels.append(cache["labels"][i])
    return torch.stack(xs), torch.cat(masks), torch.cat(index), torch.cat(labels)


def _batches(
    cache: dict[str, Any], images: torch.Tensor, batch_size: int, augment: bool
) -> Callable[[torch.Generator], Iterator[Batch]]:
    def batches(gen: torch.Generator) -> Iterator[Batch]:
        order = images[torch.randperm(len(images), generator=gen)]
        # Drawn even without augmentation, so the data order does not depend on it.
        flips = (torch.rand(len(order), generator=gen) < 0.5) & augment
        for chunk, fl in zip(order.split(batch_size), flips.split(batch_size)):
            yield collate(cache, chunk, fl)

    return batches


@torch.no_grad()
def predict(
    model: RegionClassifier, cache: dict[str, Any], images: torch.Tensor, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true classes of every region of ``images`` (unflipped)."""
    model.eval()
    preds, labels = [], []
    for chunk in images.split(batch_size):
        x, masks, index, y = collate(cache, chunk, torch.zeros(len(chunk), dtype=torch.bool))
        preds.append(model(x, masks, index).argmax(1))
        labels.append(y)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def region_metrics(pred: np.ndarray, true: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Overall region accuracy, mean per-class accuracy (over the classes present in ``true``),
    per-class accuracies and the confusion matrix ``(true, predicted)`` of counts."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    support = confusion.sum(1)
    per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    return {
        "accuracy": float((pred == true).mean()),
        "mean_class_accuracy": float(np.nanmean(per_class)),
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
        "confusion": confusion.tolist(),
        "regions": len(true),
    }


def check_data(path: str) -> str | None:
    """``None`` if ``path`` is a folder, else the message saying what is missing and how to fix it."""
    if Path(path).is_dir():
        return None
    return (
        f"MSRC-v2 region dataset not found at {path!r} (resolved: {Path(path).resolve()}).\n"
        "Expected <data>/images/*.png, <data>/instances/*.png and <data>/labels.json "
        "(see the matbackprop.data.msrc docstring); pass --data DIR or set MSRC_V2=DIR."
    )


def _splits(
    cfg: O2PConfig, train_cache: dict[str, Any], test_cache: dict[str, Any]
) -> tuple[dict[str, Any], torch.Tensor, dict[str, Any], torch.Tensor]:
    """(fit cache, fit image indices, evaluation cache, evaluation image indices)."""
    n = len(train_cache["names"])
    if cfg.validation:  # every 5th training image is held out: the groups stay balanced
        held = torch.arange(n) % 5 == 4
        return train_cache, torch.arange(n)[~held], train_cache, torch.arange(n)[held]
    return train_cache, torch.arange(n), test_cache, torch.arange(len(test_cache["names"]))


def build_model(cfg: O2PConfig, backbone: nn.Module, pca: tuple[torch.Tensor, torch.Tensor]) -> RegionClassifier:
    """The region classifier of ``cfg.model``: the trained blocks (copied from ``backbone``), the 1x1
    conv started at ``pca``, pooling and head; the head's initialisation depends on ``cfg.seed``."""
    from ...data.msrc import MSRC_CLASSES

    spec = MODEL_KINDS[cfg.model]
    k = cfg.trainable_blocks if spec["end_to_end"] else 0
    trunk = nn.Sequential(*copy.deepcopy(blocks_of(backbone)[FEATURE_END - k : FEATURE_END]))
    torch.manual_seed(cfg.seed)
    return build_region_classifier(
        cfg.model,
        trunk,
        FEATURE_CHANNELS,
        len(MSRC_CLASSES),
        channels=cfg.channels,
        eps=cfg.eps,
        route=cfg.route,
        spectral_dtype=torch.float64 if cfg.spectral_dtype == "float64" else None,
        reduce_init=pca,
    )


def _optimizer(model: RegionClassifier, cfg: O2PConfig) -> torch.optim.Optimizer:
    features = [p for p in [*model.trunk.parameters(), *model.reduce.parameters()] if p.requires_grad]
    lr = cfg.head_lr
    groups: list[dict[str, Any]] = [{"params": list(model.head.parameters()), "lr": lr, "base_lr": lr}]
    if features:
        groups.append({"params": features, "lr": cfg.features_lr, "base_lr": cfg.features_lr})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _set_cosine_lr(optimizer: torch.optim.Optimizer, epoch: int, epochs: int) -> float:
    """Cosine decay per epoch. The rate lives in the optimizer's state, so resume restores it."""
    factor = 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return factor


def _shard(batch: Batch, rank: int, world_size: int) -> tuple[Batch, float]:
    """This rank's images of a collated batch, with its share of the regions (the loss is a mean over
    regions); a rank left without images repeats the first one with weight 0 (see ``fit``)."""
    x, masks, index, labels = batch
    lo, hi = distributed.shard_bounds(len(x), rank, world_size)
    weight_zero = hi == lo
    if weight_zero:
        lo, hi = 0, 1
    keep = (index >= lo) & (index < hi)
    share = 0.0 if weight_zero else int(keep.sum()) / len(index)
    return (x[lo:hi], masks[keep], index[keep] - lo, labels[keep]), share


def train_one(cfg: O2PConfig, backbone: nn.Module | None = None) -> dict[str, Any]:
    """Train one configuration, evaluate it and write ``metrics.json``; returns the metrics (``{}`` on
    the ranks other than 0 under torchrun)."""
    torch.set_num_threads(cfg.threads)
    ctx = distributed.init()  # under torchrun: rank 0 prepares the run directory and the caches first
    try:
        return _train_one(cfg, backbone, ctx)
    finally:
        distributed.shutdown(ctx)


def _train_one(cfg: O2PConfig, backbone: nn.Module | None, ctx: distributed.DistContext) -> dict[str, Any]:
    from ...data.msrc import MSRC_CLASSES

    backbone = backbone if backbone is not None else load_backbone()
    epochs = cfg.num_epochs
    run_dir = cfg.run_dir
    with distributed.main_first(ctx):
        if ctx.is_main and not cfg.resume and run_dir.exists():
            shutil.rmtree(run_dir)  # a fresh run: the old log would otherwise be appended to
        run_dir.mkdir(parents=True, exist_ok=True)
        cut = FEATURE_END - (cfg.trainable_blocks if MODEL_KINDS[cfg.model]["end_to_end"] else 0)
        train_cache = feature_cache(cfg.data, cfg.out, "train", cut, cfg.quick, backbone)
        test_cache = feature_cache(cfg.data, cfg.out, "test", cut, cfg.quick, backbone)
        frozen = (
            train_cache
            if cut == FEATURE_END
            else feature_cache(cfg.data, cfg.out, "train", FEATURE_END, cfg.quick, backbone)
        )
    fit_cache, fit_images, eval_cache, eval_images = _splits(cfg, train_cache, test_cache)
    pca = pca_projection(frozen["feats"][fit_images], cfg.channels)
    model = build_model(cfg, backbone, pca)
    optimizer = _optimizer(model, cfg)
    _set_cosine_lr(optimizer, 0, epochs)
    if ctx.is_main:
        (run_dir / "config.json").write_text(json.dumps(cfg.record(), indent=2))

    counts = {"correct": 0, "total": 0}

    def step(batch: Batch, net: nn.Module) -> torch.Tensor:
        x, masks, index, labels = batch
        logits = net(x, masks, index)  # through net: under torchrun it is the DDP wrapper
        counts["correct"] += int((logits.argmax(1) == labels).sum())
        counts["total"] += len(labels)
        return nnf.cross_entropy(logits, labels)

    def on_epoch_end(epoch: int) -> dict[str, Any]:
        row: dict[str, Any] = {
            "train_accuracy": counts["correct"] / max(counts["total"], 1),
            "lr_factor": round(_set_cosine_lr(optimizer, epoch, epochs), 6),
        }
        counts.update(correct=0, total=0)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == epochs:
            started = time.perf_counter()
            m = region_metrics(*predict(model, eval_cache, eval_images), len(MSRC_CLASSES))
            row.update(
                eval_accuracy=m["accuracy"],
                eval_mean_class_accuracy=m["mean_class_accuracy"],
                eval_seconds=round(time.perf_counter() - started, 2),
            )
        _set_cosine_lr(optimizer, epoch + 1, epochs)  # the rate of the next epoch, saved with the checkpoint
        return row

    desc = f"{cfg.name} seed {cfg.seed}"
    fit(
        model,
        optimizer,
        step,
        _batches(fit_cache, fit_images, cfg.batch_size, augment=True),
        TrainConfig(epochs=epochs, out_dir=run_dir, seed=cfg.seed, resume=cfg.resume, desc=desc),
        on_epoch_end,
        shard=_shard,
    )
    if not ctx.is_main:
        return {}
    model.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["model"])
    pred, true = predict(model, eval_cache, eval_images)
    metrics = region_metrics(pred, true, len(MSRC_CLASSES))
    totals = read_train_log(run_dir / "train_log.csv")
    metrics |= {
        "name": cfg.name,
        "model": cfg.model,
        "seed": cfg.seed,
        "route": cfg.route,
        "spectral_dtype": cfg.spectral_dtype,
        "eps": cfg.eps,
        "epochs": epochs,
        "head_lr": cfg.head_lr,
        "evaluated_on": "validation" if cfg.validation else "test",
        "quick": cfg.quick,
        "train_seconds": round(totals["train_seconds"], 2),
        "eval_seconds": round(totals["eval_seconds"], 2),
        "wall_seconds": round(totals["train_seconds"] + totals["eval_seconds"], 2),
        "skipped": totals["skipped"],
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "cache_seconds": round(float(train_cache["seconds"]) + float(test_cache["seconds"]), 2),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_training_curves({metrics["name"]: [run_dir]}, run_dir / "curves.png")
    print(
        f"{desc}: {metrics['evaluated_on']} accuracy {metrics['accuracy']:.4f}, mean class accuracy "
        f"{metrics['mean_class_accuracy']:.4f}, {metrics['wall_seconds']:.0f} s, {metrics['skipped']} skipped steps"
    )
    return metrics


def all_configs(cfg: O2PConfig, seeds: list[int]) -> list[O2PConfig]:
    """Every model x ``seeds``, then the DeepO2P ablations of :data:`ABLATIONS` (each with its seeds)."""
    configs = [
        dataclasses.replace(cfg, model=m, seed=s, route="eig", spectral_dtype="float32", eps=cfg.eps)
        for m in MODEL_KINDS
        for s in seeds
    ]
    for name, a in ABLATIONS.items():
        if name != "deepo2p":
            configs += [
                dataclasses.replace(
                    cfg, model="deepo2p", seed=s, route=a["route"], spectral_dtype=a["spectral_dtype"], eps=a["eps"]
                )
                for s in (a["seeds"] or seeds)
            ]
    return configs


def run_all(cfg: O2PConfig, seeds: list[int], eval_cfg: EvalConfig) -> int:
    """Every model x ``seeds`` and the DeepO2P ablations, sequentially, then the evaluation.

    Finished runs (with ``metrics.json``) are kept; with ``cfg.resume`` unfinished ones continue from
    their checkpoint. Writes ``<out>/run_all.json`` with the wall time of every run and in total.
    """
    from .report import write_report
    from .timing import time_ablation_steps

    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    backbone = load_backbone()
    timing: dict[str, Any] = {"started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "runs": {}}
    t0 = time.perf_counter()
    for split in ("train", "test"):  # the caches first, so the first run's time is comparable
        feature_cache(cfg.data, cfg.out, split, FEATURE_END - cfg.trainable_blocks, cfg.quick, backbone)
        feature_cache(cfg.data, cfg.out, split, FEATURE_END, cfg.quick, backbone)
    timing["cache_seconds"] = round(time.perf_counter() - t0, 1)
    for run_cfg in tqdm(all_configs(cfg, seeds), desc="all runs", unit="run"):
        key = f"{run_cfg.name}/seed{run_cfg.seed}"
        if (run_cfg.run_dir / "metrics.json").exists():
            tqdm.write(f"{key}: finished earlier, kept")
            continue
        t0 = time.perf_counter()
        train_one(run_cfg, backbone)
        timing["runs"][key] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    step_times = time_ablation_steps(cfg, backbone)
    (Path(cfg.out) / "step_times.json").write_text(json.dumps(step_times, indent=1))
    timing["benchmark_seconds"] = round(time.perf_counter() - t0, 1)
    timing["total_seconds"] = round(time.perf_counter() - started, 1)
    timing["threads"] = cfg.threads
    history = _record_invocation(Path(cfg.out) / "run_all.json", timing)
    print(
        f"this invocation: {timing['total_seconds'] / 60:.1f} min; all invocations: "
        f"{history['total_seconds'] / 60:.1f} min"
    )
    return write_report(eval_cfg)


def _record_invocation(path: Path, timing: dict[str, Any]) -> dict[str, Any]:
    """Append one ``--all`` invocation to ``path`` (a later one only trains the runs still missing)."""
    history: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"invocations": []}
    if "invocations" not in history:  # written by a single invocation
        history = {"invocations": [history]}
    history["invocations"].append(timing)
    history["runs"] = {k: v for inv in history["invocations"] for k, v in inv["runs"].items()}
    history["total_seconds"] = round(sum(inv["total_seconds"] for inv in history["invocations"]), 1)
    path.write_text(json.dumps(history, indent=1))
    return history
