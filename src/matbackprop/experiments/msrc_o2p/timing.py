"""Step timing of the DeepO2P ablations: one training step, and its O2P part alone, per configuration."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import nn
from tqdm import tqdm

from .config import ABLATIONS, FEATURE_END, O2PConfig
from .features import feature_cache, load_backbone, pca_projection
from .pipeline import build_model, collate

__all__ = ["time_ablation_steps"]


def time_ablation_steps(cfg: O2PConfig, backbone: nn.Module | None = None, rounds: int = 7) -> dict[str, Any]:
    """Milliseconds per DeepO2P training step (forward + backward of one batch of ``cfg.batch_size``
    training images) and of its O2P part alone (pooling + spectral step + backward, on fixed
    features), for every configuration of :data:`ABLATIONS`; the configurations alternate within each
    of ``rounds`` rounds, so a change in the machine's load hits all of them. Best and median of the
    rounds."""
    torch.set_num_threads(cfg.threads)
    backbone = backbone if backbone is not None else load_backbone()
    cache = feature_cache(cfg.data, cfg.out, "train", FEATURE_END - cfg.trainable_blocks, cfg.quick, backbone)
    frozen = feature_cache(cfg.data, cfg.out, "train", FEATURE_END, cfg.quick, backbone)
    pca = pca_projection(frozen["feats"], cfg.channels)
    n = min(cfg.batch_size, len(cache["names"]))
    x, masks, index, labels = collate(cache, torch.arange(n), torch.zeros(n, dtype=torch.bool))
    models = {}
    for name, a in ABLATIONS.items():
        run_cfg = dataclasses.replace(
            cfg, model="deepo2p", seed=0, route=a["route"], spectral_dtype=a["spectral_dtype"], eps=a["eps"]
        )
        models[name] = build_model(run_cfg, backbone, pca).train()
    with torch.no_grad():
        features = models["deepo2p"].features(x)
    gen = torch.Generator().manual_seed(0)
    cotangent = torch.randn(len(labels), models["deepo2p"].pooling.out_features, generator=gen)
    times: dict[str, dict[str, list[float]]] = {name: {"step": [], "o2p": []} for name in models}
    for _ in tqdm(range(rounds), desc="timing ablations", unit="round", leave=False):
        for name, model in models.items():
            started = time.perf_counter()
            nnf.cross_entropy(model(x, masks, index), labels).backward()
            times[name]["step"].append(time.perf_counter() - started)
            f = features.clone().requires_grad_(True)
            started = time.perf_counter()
            (model.pooling(f, masks, index) * cotangent).sum().backward()
            times[name]["o2p"].append(time.perf_counter() - started)
    return {
        "images": n,
        "regions": len(labels),
        "rounds": rounds,
        "threads": cfg.threads,
        "ms": {
            name: {
                part: {"best": round(1000 * min(v), 2), "median": round(1000 * statistics.median(v), 2)}
                for part, v in t.items()
            }
            for name, t in times.items()
        },
    }
