"""Training DeepNCuts end to end through the normalized-cuts layer (one seed per run).

A step takes one training image's cached frozen-block outputs (:mod:`.features`), a random square crop
(``crop`` pixels, aligned to the coarsest block so every block is cropped exactly) and a random
horizontal flip, runs the trained backbone blocks, the hypercolumn head and the NCuts layer on the
stride-``grid_stride`` node grid, and compares the embedding's column space with one randomly chosen
human segmentation through the projector loss ``1/2 ||Pi_Z - Pi_E||_F^2`` (Ionescu et al. 2015, sec. 5).
Gradients reach the trained backbone blocks through the layer's matrix backpropagation. After each epoch
the val loss is the mean projector loss on the first ``val_images`` val images (whole images, the first
annotator, no augmentation), logged with the mean grid-edge AUC of the embedding there
(:func:`.boundary_loss.edge_auc`), which has tracked the segmentations better than the loss.

Resumable: the loop of :mod:`matbackprop.train` (atomic checkpoints, ``--resume``, exact to the bit);
all randomness of the data stream comes from the generator it hands to ``batches``.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from ...models.ncuts_net import DeepNCutsNet, NetConfig
from ...ops.ncut import projector_loss
from ...train import TrainConfig, fit, load_checkpoint, save_checkpoint
from .boundary_loss import boundary_ranking_loss, edge_auc
from .config import NCutsTrainConfig
from .features import FeatureCache, build_cache

__all__ = ["train", "finished", "grid_labels", "crop_sample", "corrupt_events", "training_data", "load_initial_weights"]

SCALE_IMAGES = 20  # training images whose block RMS sets the fixed per-block scales


def grid_labels(seg: np.ndarray, grid: tuple[int, int], stride: int) -> torch.Tensor:
    """Labels ``(h*w,)`` of a segmentation sampled at the centres of a ``stride`` grid, renumbered 0..s-1."""
    h, w = grid
    H, W = seg.shape
    rows = np.minimum(np.arange(h) * stride + stride // 2, H - 1)
    cols = np.minimum(np.arange(w) * stride + stride // 2, W - 1)
    sampled = seg[np.ix_(rows, cols)].ravel()
    _, labels = np.unique(sampled, return_inverse=True)
    return torch.from_numpy(labels.astype(np.int64))


def crop_sample(
    blocks: list[torch.Tensor],
    strides: list[int],
    seg: np.ndarray,
    grid_stride: int,
    crop: int,
    gen: torch.Generator,
    context: int = 0,
) -> tuple[list[torch.Tensor], np.ndarray, tuple[int, int, int, int]]:
    """A random ``crop x crop``-pixel window of cached blocks ``(C_b, h_b, w_b)`` (at ``strides``) and of the
    segmentation ``(H, W)``. Offsets are multiples of the coarsest stride, so each block's window is exactly
    its cells under the pixel window. ``crop`` 0 or larger than the image: no crop along that side.

    The blocks are cut to the window grown by ``context`` pixels on every side (within the image; a
    multiple of the coarsest stride), the segmentation to the window itself. Returns the blocks, the
    segmentation and the window ``(top, left, height, width)`` in pixels relative to the blocks' first
    cell: what :meth:`~matbackprop.models.ncuts_net.DeepNCutsNet.blocks_from_cache` cuts them to once
    the trained blocks have run on the context."""
    H, W = seg.shape
    unit = max(strides)
    if context % unit:
        raise ValueError(f"context must be a multiple of the coarsest stride {unit}, got {context}")
    offsets = []
    for size in (H, W):
        if not crop or crop >= size:
            offsets.append((0, size))
            continue
        choices = (size - crop) // unit + 1
        offsets.append((unit * int(torch.randint(choices, (1,), generator=gen)), crop))
    (y0, hh), (x0, ww) = offsets
    ya, xa = max(0, y0 - context), max(0, x0 - context)
    yb, xb = min(H, y0 + hh + context), min(W, x0 + ww + context)
    out = []
    for b, s in zip(blocks, strides):
        ys, xs = slice(ya // s, -(-yb // s)), slice(xa // s, -(-xb // s))
        out.append(b[:, ys, xs])
    return out, seg[y0 : y0 + hh, x0 : x0 + ww], (y0 - ya, x0 - xa, hh, ww)


def corrupt_events(skipped: list[str]) -> list[dict]:
    """Log rows recording the samples left out by ``--skip-corrupt`` (one summary, one per file)."""
    if not skipped:
        return []
    print(f"skipped {len(skipped)} corrupt file(s) (--skip-corrupt):\n  " + "\n  ".join(skipped))
    return [{"event": f"skipped {len(skipped)} corrupt file(s)", "corrupt_skipped": len(skipped)}] + [
        {"event": f"corrupt file skipped: {entry}"} for entry in skipped
    ]


def training_data(cfg: NCutsTrainConfig) -> tuple[list[FeatureCache], dict[str, list[np.ndarray]], list[str]]:
    """Caches of the training split(s), every training image's human segmentations, corrupt files skipped."""
    from ...data import CorruptFileError
    from ...data.bsds500 import BSDS500, load_ground_truth

    splits = ["train", "val"] if cfg.train_split == "trainval" else ["train"]
    caches, segmentations, skipped = [], {}, []
    for split in splits:
        cache = build_cache(cfg.data, split, cfg.cache_dir, cfg.backbone, cfg.grid_stride, cfg.limit, cfg.skip_corrupt)
        skipped += cache.skipped
        gt_dir = BSDS500(cfg.data, split).gt_dir
        for image_id in list(cache.ids):
            try:
                segmentations[image_id] = load_ground_truth(gt_dir / f"{image_id}.mat")[0]
            except CorruptFileError as e:  # damaged after the feature cache was built
                if not cfg.skip_corrupt:
                    raise
                skipped.append(f"{e.path}: {e}")
                cache.ids.remove(image_id)
        caches.append(cache)
    return caches, segmentations, skipped


def _val_loss_fn(cfg: NCutsTrainConfig, model: DeepNCutsNet):
    """``on_epoch_end`` computing the mean projector loss on the first ``val_images`` val images."""
    if not cfg.val_images or cfg.train_split == "trainval":
        return None
    from ...data.bsds500 import BSDS500, load_ground_truth

    if not (Path(cfg.data) / "BSDS500" / "images" / "val").is_dir():
        print(f"no val split under {cfg.data}: no val loss is logged")
        return None
    cache = build_cache(cfg.data, "val", cfg.cache_dir, cfg.backbone, cfg.grid_stride, cfg.val_images, cfg.skip_corrupt)
    gt_dir = BSDS500(cfg.data, "val").gt_dir
    segs = {i: load_ground_truth(gt_dir / f"{i}.mat")[0][0] for i in cache.ids}

    @torch.no_grad()
    def on_epoch_end(epoch: int) -> dict:
        was = model.training
        model.eval()
        losses, aucs = [], []
        for image_id in cache.ids:
            blocks = cache.load(image_id)
            Z = model(blocks)
            grid = (blocks[0].shape[-2], blocks[0].shape[-1])
            labels = grid_labels(segs[image_id], grid, cfg.grid_stride)
            losses.append(float(projector_loss(Z[0].double(), labels)))
            aucs.append(edge_auc(Z[0], labels, grid))
        model.train(was)
        return {"val_loss": float(np.mean(losses)), "val_edge_auc": float(np.nanmean(aucs)), "val_images": len(losses)}

    return on_epoch_end


#: Config fields that say where and how a run executes, not what it trains.
RUNTIME_FIELDS = frozenset(
    {
        "data",
        "out",
        "cache",
        "threads",
        "resume",
        "checkpoint_every",
        "skip_corrupt",
        "stop_on_nonfinite",
        "max_consecutive_skips",
    }
)


#: The value a field had in effect for a run saved before the field existed (not its default today).
FIELDS_BEFORE_THEY_EXISTED = {"init_from": None, "boundary_weight": 0.0, "exact_crops": False}


def _trains_backbone(values: dict) -> bool:
    return bool(values.get("train_blocks")) and bool(values.get("epochs"))


def finished(cfg: NCutsTrainConfig) -> bool:
    """Whether ``cfg``'s run folder already holds the model ``cfg`` asks for: a ``model.pt`` saved with
    the same training settings, all but :data:`RUNTIME_FIELDS` (``--resume`` with more epochs continues
    from the checkpoint instead). ``exact_crops`` counts only for runs that train backbone blocks: the
    others compute the same either way."""
    path = cfg.run_dir / "model.pt"
    if not path.is_file():
        return False
    stored = load_checkpoint(path).get("train", {})
    saved = {f.name: stored.get(f.name, FIELDS_BEFORE_THEY_EXISTED.get(f.name, f.default)) for f in fields(cfg)}
    wanted = cfg.to_dict()
    ignored = set(RUNTIME_FIELDS)
    if not _trains_backbone(saved) and not _trains_backbone(wanted):
        ignored.add("exact_crops")
    return all(saved[name] == wanted[name] for name in saved if name not in ignored)


def build_model(cfg: NCutsTrainConfig, caches: list[FeatureCache]) -> DeepNCutsNet:
    """The network at initialisation (``seed``): a random head with block scales measured on the first
    training images, or the weights of the run ``init_from``."""
    torch.manual_seed(cfg.seed)
    model = DeepNCutsNet(cfg.net)
    if cfg.init_from:
        load_initial_weights(model, Path(cfg.init_from))
        return model
    first = [caches[0].load(i) for i in caches[0].ids[:SCALE_IMAGES]]
    model.scales.copy_(torch.tensor(model.block_scales(first)))
    return model


def load_initial_weights(model: DeepNCutsNet, run_dir: Path) -> None:
    """Copy the head, block scales and trained blocks of the finished run ``run_dir`` into ``model``.

    The run must share the backbone, ``k``, the widths and the grid stride, and must not have trained a
    block that ``model`` keeps frozen (the feature cache holds the pristine outputs of those)."""
    path = run_dir / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: no model.pt in {run_dir} (is that run finished?)")
    state = load_checkpoint(path)
    theirs = NetConfig(**state["net_config"]) if "net_config" in state else None
    ours = model.config
    same = ("backbone", "k", "hidden", "out_channels", "grid_stride")
    if theirs is None or any(getattr(theirs, f) != getattr(ours, f) for f in same):
        raise ValueError(f"--init-from: {path} holds a different network ({theirs}); this run builds {ours}")
    if theirs.train_blocks > ours.train_blocks:
        raise ValueError(
            f"--init-from: {path} trained {theirs.train_blocks} backbone blocks, more than this run's "
            f"{ours.train_blocks}: its trained blocks would disagree with the cached frozen ones"
        )
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    bad = [k for k in missing if not k.startswith("backbone.")] + list(unexpected)
    if bad:
        raise ValueError(f"--init-from: {path} does not fit the network: {', '.join(bad[:5])}")


def train(cfg: NCutsTrainConfig) -> int:
    """Train one seed; the model lands in ``<out>/seed<seed>/model.pt`` (see :func:`.inference.load_model`)."""
    from ...train import distributed

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.resume and finished(cfg):
        # Re-saving would change model.pt's bytes (e.g. the thread count it records), and with them the
        # fingerprint under which `eval ncuts` keeps this run's scores.
        print(f"{cfg.run_dir / 'model.pt'} already holds the model these settings train: left as it is")
        return 0
    started = time.perf_counter()
    ctx = distributed.init()
    try:
        with distributed.main_first(ctx):  # one process computes the backbone features, the others read them
            caches, segmentations, skipped = training_data(cfg)
        if not any(c.ids for c in caches):
            raise RuntimeError(f"no usable training images under {cfg.data}")
        return _train(cfg, ctx, caches, segmentations, skipped, started)
    finally:
        distributed.shutdown(ctx)


def _train(
    cfg: NCutsTrainConfig, ctx, caches: list[FeatureCache], segmentations: dict, skipped: list[str], started: float
) -> int:
    model = build_model(cfg, caches)
    entries = sorted((image_id, cache) for cache in caches for image_id in cache.ids)
    strides = model.cached_strides()
    backbone_params, head_params = model.trainable_parameters()
    groups = [{"params": head_params, "lr": cfg.lr}]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": cfg.backbone_lr})
    optimizer = torch.optim.Adam(groups)
    if ctx.is_main:
        cfg.write(cfg.run_dir / "config.json")

    # Exact crops: trained blocks get their receptive field's context and no mirrored input (see the config).
    context = model.context() if cfg.exact_crops else 0
    mirror = not (cfg.exact_crops and model.first_trained < len(strides))

    def samples(gen: torch.Generator):
        for index in torch.randperm(len(entries), generator=gen).tolist():
            image_id, cache = entries[index]
            seg_list = segmentations[image_id]
            seg = seg_list[int(torch.randint(len(seg_list), (1,), generator=gen))]
            blocks, seg, window = crop_sample(
                cache.load(image_id), strides, seg, cfg.grid_stride, cfg.crop, gen, context
            )
            # the coin is drawn either way, so both settings see the same crops
            if bool(torch.rand((), generator=gen) < 0.5) and mirror:  # horizontal flip
                blocks, seg = [b.flip(-1) for b in blocks], seg[:, ::-1]
            if context:
                grid = (-(-window[2] // cfg.grid_stride), -(-window[3] // cfg.grid_stride))
            else:
                grid = (blocks[0].shape[-2], blocks[0].shape[-1])  # block 0 is at the grid stride
            labels = grid_labels(np.ascontiguousarray(seg), grid, cfg.grid_stride).reshape(1, -1)
            yield blocks, labels, (window if context else None), grid

    def batches(gen: torch.Generator):
        batch = []  # a list: crops of portrait and landscape images may differ in size
        for sample in samples(gen):
            batch.append(sample)
            if len(batch) == cfg.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def loss(blocks: list[torch.Tensor], labels: torch.Tensor, window, grid: tuple[int, int], net) -> torch.Tensor:
        Z = net(blocks, window)
        value = projector_loss(Z, labels).mean()
        if cfg.boundary_weight:
            value = value + cfg.boundary_weight * boundary_ranking_loss(Z[0], labels[0], grid)
        return value

    def step(batch, net) -> torch.Tensor:
        return torch.stack([loss(blocks, labels, window, grid, net) for blocks, labels, window, grid in batch]).mean()

    on_epoch_end = _val_loss_fn(cfg, model)
    events = corrupt_events(skipped) if ctx.is_main else []
    if (
        on_epoch_end is not None
        and ctx.is_main
        and cfg.epochs > 0
        and not (cfg.resume and (cfg.run_dir / "checkpoint.pt").exists())
    ):
        init = on_epoch_end(-1)  # the val loss before any update: the reference training must beat
        print(f"val loss at initialisation: {init['val_loss']:.4f} ({init['val_images']} images)")
        events.append({"event": "val loss at initialisation", **init})
    train_config = TrainConfig(
        epochs=cfg.epochs,
        out_dir=cfg.run_dir,
        seed=cfg.seed,
        resume=cfg.resume,
        desc=f"DeepNCuts seed {cfg.seed}",
        max_grad_norm=cfg.max_grad_norm,
        checkpoint_every=cfg.checkpoint_every,
        skip_nonfinite=not cfg.stop_on_nonfinite,
        max_consecutive_skips=cfg.max_consecutive_skips,
        log_events=events,
    )
    if cfg.epochs > 0:
        fit(model, optimizer, step, batches, train_config, on_epoch_end=on_epoch_end)
    if not ctx.is_main:
        return 0
    save_checkpoint(
        cfg.run_dir / "model.pt",
        {"model": model.state_dict_to_save(), "net_config": cfg.net.to_dict(), "train": cfg.to_dict()},
    )
    elapsed = time.perf_counter() - started
    (cfg.run_dir / "wall_time.json").write_text(json.dumps({"train_seconds": round(elapsed, 1)}))
    print(f"trained DeepNCuts seed {cfg.seed} in {elapsed / 60:.1f} min -> {cfg.run_dir / 'model.pt'}")
    return 0
