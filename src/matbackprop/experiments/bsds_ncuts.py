"""DeepNCuts on BSDS500: training, the baselines, evaluation and the results table.

Pipeline. The ImageNet EfficientNet-Lite0 backbone is frozen: its four stages (strides 4-32) are
computed once per image and cached under the run directory. They are fused on one working grid
(stride 8 by default: 41 x 61 nodes for a 321 x 481 image; ``--grid-stride 4`` gives 81 x 121); a
training step applies the two conv+ReLU pairs and the normalized-cuts
layer, and compares the embedding's column space with one randomly chosen human segmentation through
the projector loss. Evaluation segments each test image by k-means on the embedding's rows, for a range
of cluster counts (the hierarchy), at full resolution, and scores covering, PRI, VI (ODS/OIS) and
boundary F with the BSDS benchmark of :mod:`matbackprop.metrics`.

Methods in the table: (a) classic normalized cuts on colour, position and texture; (a') the official
gPb-owt-ucm hierarchy (from the shipped UCMs); (b) the backbone's features through the same layer,
untrained; (c) DeepNCuts, trained end to end, one row per seed plus mean and spread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..models.deepncuts import DeepNCuts, fuse_scales
from ..ops.ncut import ncut_embedding, projector_loss
from ..train import TrainConfig, fit, load_checkpoint, save_checkpoint

__all__ = ["add_train_arguments", "train", "grid_labels", "load_features"]

DEFAULT_DATA = "../shared/bsds500"
DEFAULT_OUT = "runs/ncuts"
BACKBONE_STRIDES = (4, 8, 16, 32)
QUICK_TRAIN_IMAGES, QUICK_TEST_IMAGES = 40, 20
_SKIPPED = "_skipped_corrupt"  # key of the feature cache listing the files left out as corrupt


def _dataset(root: str, split: str):
    from ..data.bsds500 import BSDS500

    return BSDS500(root, split)


# ------------------------------------------------------------------------------------------------
# Backbone feature cache


@torch.no_grad()
def load_features(root: str, split: str, cache_dir: Path, limit: int | None = None, skip_corrupt: bool = False,
                  skipped: list[str] | None = None) -> dict[str, list[torch.Tensor]]:
    """Backbone maps per image id (float16, at their native strides), computed once and cached.

    A corrupt image or ground-truth file raises :class:`~matbackprop.data.CorruptFileError` naming it;
    with ``skip_corrupt`` the image is left out and ``"<file>: <reason>"`` appended to ``skipped``
    (also when the cache built by an earlier such run is read back).
    """
    from ..data import CorruptFileError
    from ..models.backbone import efficientnet_lite0, preprocess

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"features_{split}{'' if limit is None else f'_{limit}'}.pt"
    if path.exists():
        out = load_checkpoint(path)
    else:
        data = _dataset(root, split)
        backbone = efficientnet_lite0(pretrained=True)
        ids = data.ids if limit is None else data.ids[:limit]
        out = {}
        bad = []
        for i in tqdm(range(len(ids)), desc=f"backbone features ({split})", unit="image"):
            try:
                item = data[i]
            except CorruptFileError as e:
                if not skip_corrupt:
                    raise
                bad.append(f"{e.path}: {e}")
                continue
            maps = backbone(preprocess(item["image"]).unsqueeze(0))
            out[item["id"]] = [m[0].half() for m in maps]
        out[_SKIPPED] = bad  # cached too, so a rerun still reports what is missing
        save_checkpoint(path, out)
    bad = out.pop(_SKIPPED, [])
    if skipped is not None:
        skipped.extend(bad)
    return out


def stage_scales(features: dict[str, list[torch.Tensor]]) -> list[float]:
    """Root-mean-square magnitude of each backbone stage over a set of images (to balance stages)."""
    sums = None
    for maps in features.values():
        rms = [float(m.float().pow(2).mean()) for m in maps]
        sums = rms if sums is None else [a + b for a, b in zip(sums, rms)]
    return [float(np.sqrt(s / len(features))) for s in sums]


def grid_labels(seg: np.ndarray, grid: tuple[int, int], stride: int) -> torch.Tensor:
    """Labels ``(h*w,)`` of a segmentation sampled at the centres of a ``stride`` grid, renumbered 0..s-1."""
    h, w = grid
    H, W = seg.shape
    rows = np.minimum(np.arange(h) * stride + stride // 2, H - 1)
    cols = np.minimum(np.arange(w) * stride + stride // 2, W - 1)
    sampled = seg[np.ix_(rows, cols)].ravel()
    _, labels = np.unique(sampled, return_inverse=True)
    return torch.from_numpy(labels.astype(np.int64))


# ------------------------------------------------------------------------------------------------
# Training


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=DEFAULT_DATA, help="BSDS500 folder (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="run directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--k", type=int, default=16, help="eigenvectors in the embedding")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-split", default="train", choices=["train", "trainval"])
    parser.add_argument("--grid-stride", type=int, default=8, choices=[4, 8], help="working grid of the NCuts layer")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument("--quick", action="store_true", help="quick configuration: 40 training images, 4 epochs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    add_robustness_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images per step (the loss is their mean); under torchrun the global batch, "
                             "split across the processes (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="train on the first N images of each split only (smoke tests; overrides --quick's 40)")


def add_robustness_arguments(parser: argparse.ArgumentParser) -> None:
    """Crash-safety options shared by the training commands (see docs/training.md)."""
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                        help="also checkpoint every STEPS steps inside an epoch, so --resume continues "
                             "mid-epoch (default: at epoch ends only)")
    parser.add_argument("--skip-corrupt", action="store_true",
                        help="leave out samples whose image or annotation file is corrupt (counted in the "
                             "training log) instead of stopping with an error naming the file")
    parser.add_argument("--stop-on-nonfinite", action="store_true",
                        help="stop at the first non-finite loss or gradient (default: skip that step, logged)")
    parser.add_argument("--max-consecutive-skips", type=int, default=20, metavar="N",
                        help="stop after N non-finite steps in a row (default: %(default)s)")


def corrupt_events(skipped: list[str]) -> list[dict]:
    """Log rows recording the samples left out by ``--skip-corrupt`` (one summary, one per file)."""
    if not skipped:
        return []
    print(f"skipped {len(skipped)} corrupt file(s) (--skip-corrupt):\n  " + "\n  ".join(skipped))
    return [{"event": f"skipped {len(skipped)} corrupt file(s)", "corrupt_skipped": len(skipped)}] + [
        {"event": f"corrupt file skipped: {entry}"} for entry in skipped]


def _training_set(args, skipped: list[str]) -> tuple[dict, dict]:
    from ..data import CorruptFileError
    from ..data.bsds500 import load_ground_truth

    splits = ["train", "val"] if args.train_split == "trainval" else ["train"]
    limit = args.limit if getattr(args, "limit", None) else QUICK_TRAIN_IMAGES if args.quick else None
    features, segmentations = {}, {}
    cache = Path(args.out) / "cache"
    for split in splits:
        split_features = load_features(args.data, split, cache, limit, args.skip_corrupt, skipped)
        data = _dataset(args.data, split)
        for image_id in list(split_features):
            try:
                segmentations[image_id] = load_ground_truth(data.gt_dir / f"{image_id}.mat")[0]
            except CorruptFileError as e:  # damaged after the feature cache was built
                if not args.skip_corrupt:
                    raise
                skipped.append(f"{e.path}: {e}")
                del split_features[image_id]
        features.update(split_features)
    return features, segmentations


def train(args: argparse.Namespace) -> int:
    """Train DeepNCuts for one seed; the model lands in ``<out>/seed<seed>/``.

    Under ``torchrun`` every process runs this; rank 0 builds the feature cache first and alone writes
    the log, the checkpoints and ``model.pt``.
    """
    from ..train import distributed

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    ctx = distributed.init()
    try:
        skipped: list[str] = []
        with distributed.main_first(ctx):  # one process computes the backbone features, the others read them
            features, segmentations = _training_set(args, skipped)
        if not features:
            raise RuntimeError(f"no usable training images under {args.data}")
        return _train(args, ctx, features, segmentations, skipped, started)
    finally:
        distributed.shutdown(ctx)


def _train(args, ctx, features: dict, segmentations: dict, skipped: list[str], started: float) -> int:
    scales = stage_scales(features)
    ids = sorted(features)
    run_dir = Path(args.out) / f"seed{args.seed}"
    torch.manual_seed(args.seed)
    in_channels = sum(m.shape[0] for m in features[ids[0]])
    model = DeepNCuts(in_channels, k=args.k)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    epochs = min(args.epochs, 4) if args.quick else args.epochs
    if ctx.enabled and args.batch_size < ctx.world_size and ctx.is_main:
        print(f"warning: --batch-size {args.batch_size} < {ctx.world_size} processes: some processes only "
              "repeat a sample with weight 0 each step; raise --batch-size to use them")

    target = BACKBONE_STRIDES.index(args.grid_stride)
    fused_cache = {i: fuse_scales([m.unsqueeze(0) for m in features[i]], scales, target).half() for i in ids}

    def samples(gen: torch.Generator):
        for index in torch.randperm(len(ids), generator=gen).tolist():
            image_id = ids[index]
            fused = fused_cache[image_id].float()
            seg_list = segmentations[image_id]
            seg = seg_list[int(torch.randint(len(seg_list), (1,), generator=gen))]
            labels = grid_labels(seg, fused.shape[-2:], args.grid_stride).reshape(fused.shape[-2:])
            if bool(torch.rand((), generator=gen) < 0.5):  # horizontal flip
                fused, labels = fused.flip(-1), labels.flip(-1)
            yield fused, labels.reshape(1, -1)

    def batches(gen: torch.Generator):
        # A batch is a list: portrait and landscape images have different grids, so they cannot be stacked.
        batch = []
        for sample in samples(gen):
            batch.append(sample)
            if len(batch) == args.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def step(batch, net) -> torch.Tensor:
        # The mean over the batch's images; under torchrun, over this process's share (see fit).
        return torch.stack([projector_loss(net(fused), labels).mean() for fused, labels in batch]).mean()

    config = TrainConfig(epochs=epochs, out_dir=run_dir, seed=args.seed, resume=args.resume,
                         desc=f"DeepNCuts seed {args.seed}", max_grad_norm=10.0,
                         checkpoint_every=args.checkpoint_every, skip_nonfinite=not args.stop_on_nonfinite,
                         max_consecutive_skips=args.max_consecutive_skips,
                         log_events=corrupt_events(skipped) if ctx.is_main else [])
    fit(model, optimizer, step, batches, config)
    if not ctx.is_main:
        return 0
    save_checkpoint(run_dir / "model.pt", {"model": model.state_dict(), "in_channels": in_channels, "k": args.k,
                                            "scales": scales, "train_split": args.train_split,
                                            "grid_stride": args.grid_stride})
    elapsed = time.perf_counter() - started
    (run_dir / "wall_time.json").write_text(json.dumps({"train_seconds": round(elapsed, 1)}))
    print(f"trained DeepNCuts seed {args.seed} in {elapsed / 60:.1f} min -> {run_dir / 'model.pt'}")
    return 0


# ------------------------------------------------------------------------------------------------
# Evaluation


LEVELS = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30)  # clusters per hierarchy level
METRICS = ("covering_ods", "covering_ois", "pri_ods", "pri_ois", "vi_ods", "vi_ois", "boundary_f_ods")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=DEFAULT_DATA, help="BSDS500 folder (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="run directory with seed*/model.pt (default: %(default)s)")
    parser.add_argument("--results", default="results/bsds500.json", help="machine-readable results (default: %(default)s)")
    parser.add_argument("--report", default="docs/results_bsds500.md", help="Markdown table (default: %(default)s)")
    parser.add_argument("--figures", default="docs/figures", help="folder for PNG figures (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="processes scoring images in parallel")
    parser.add_argument("--skip-gpb", action="store_true", help="leave out the gPb-owt-ucm row")
    parser.add_argument("--quick", action="store_true", help="score the first 20 test images, without the gPb row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")


class _Scorer:
    """Everything one worker needs to segment and score a test image with every method."""

    def __init__(self, args: argparse.Namespace, seeds: list[Path]) -> None:
        torch.set_num_threads(args.threads)
        from ..data.bsds500 import BSDS500

        self.data = BSDS500(args.data, "test")
        self.args = args
        self.models = {}
        self.grid_stride = 8
        self.scales = None
        for run in seeds:
            state = load_checkpoint(run / "model.pt")
            model = DeepNCuts(state["in_channels"], k=state["k"])
            model.load_state_dict(state["model"])
            self.models[f"DeepNCuts ({run.name})"] = model.eval()
            self.scales, self.grid_stride = state["scales"], state.get("grid_stride", 8)
        self.features = load_features(args.data, "test", Path(args.out) / "cache", QUICK_TEST_IMAGES if args.quick else None)

    @torch.no_grad()
    def embeddings(self, image_id: str, image: np.ndarray) -> dict[str, tuple[torch.Tensor, tuple[int, int]]]:
        from .classic_ncuts import classic_ncut_embedding

        out = {"classic NCuts (colour, position, texture)": classic_ncut_embedding(image, stride=10)}
        maps = [m.unsqueeze(0) for m in self.features[image_id]]
        scales = self.scales or [float(m.float().pow(2).mean().sqrt()) for m in maps]
        fused = fuse_scales(maps, scales, BACKBONE_STRIDES.index(self.grid_stride))
        grid = tuple(fused.shape[-2:])
        F = torch.relu(fused).flatten(2).transpose(1, 2)
        out["backbone features + NCuts (untrained)"] = (ncut_embedding(F, 16)[0], grid)
        for name, model in self.models.items():
            out[name] = (model(fused)[0], grid)
        return out

    def __call__(self, index: int) -> tuple[str, dict]:
        from ..metrics import evaluate_regions, evaluate_segmentation_boundaries
        from .segment import segment_embedding

        item = self.data[index]
        results = {}
        for name, (Z, grid) in self.embeddings(item["id"], item["image"]).items():
            segs = segment_embedding(Z, grid, item["image"].shape[:2], LEVELS)
            results[name] = (
                evaluate_regions(segs, item["segmentations"]),
                evaluate_segmentation_boundaries(segs, item["boundaries"]),
                segs,
            )
        return item["id"], results


_SCORER: _Scorer | None = None


def _init_worker(args, seeds) -> None:
    global _SCORER
    _SCORER = _Scorer(args, seeds)


def _score(index: int):
    return _SCORER(index)


def _gpb_rows(args, ids: list[str]) -> tuple[list, list, list]:
    """Official gPb-owt-ucm hierarchies (99 thresholds) and the human leave-one-out row, cached."""
    from ..data.bsds500 import BSDS500, load_ground_truth
    from ..metrics import evaluate_human_regions, evaluate_ucm_boundaries, evaluate_ucm_regions
    from scipy.io import loadmat

    cache = Path(args.out) / "cache" / f"gpb_human_{len(ids)}.pt"
    if cache.exists():
        return load_checkpoint(cache)["rows"]
    gt_dir = BSDS500(args.data, "test").gt_dir
    regions, boundaries, human = [], [], []
    for image_id in tqdm(ids, desc="gPb-owt-ucm and human rows", unit="image"):
        segs, bdrys = load_ground_truth(gt_dir / f"{image_id}.mat")
        human.extend(evaluate_human_regions(segs))
        if not args.skip_gpb:
            ucm_path = Path(args.data) / "gpb-owt-ucm" / "test" / f"{image_id}.mat"
            ucm2 = loadmat(str(ucm_path))["ucm2"]
            regions.append(evaluate_ucm_regions(ucm2, segs))
            boundaries.append(evaluate_ucm_boundaries(ucm2, bdrys))
    rows = (regions, boundaries, human)
    if not args.skip_gpb:
        save_checkpoint(cache, {"rows": rows})
    return rows


def _summary(regions, boundaries) -> dict[str, float]:
    from ..metrics import collect_boundaries, collect_regions

    r = collect_regions(regions)
    out = {"covering_ods": r.cover_ods, "covering_ois": r.cover_ois, "covering_best": r.cover_best,
           "pri_ods": r.pri_ods, "pri_ois": r.pri_ois, "vi_ods": r.vi_ods, "vi_ois": r.vi_ois}
    if boundaries:
        b = collect_boundaries(boundaries)
        out.update({"boundary_f_ods": b.ods_f, "boundary_f_ois": b.ois_f, "boundary_ap": b.ap})
    return out


def _mean_std(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = rows[0].keys()
    return {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))} for k in keys}


def evaluate(args: argparse.Namespace) -> int:
    """Score every method on the test split; write the JSON, the Markdown table and the figures."""
    import multiprocessing as mp

    from ..data.bsds500 import BSDS500

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    seeds = sorted(p.parent for p in Path(args.out).glob("seed*/model.pt"))
    if not seeds:
        print(f"no trained model under {args.out}/seed*/model.pt: the DeepNCuts rows will be missing "
              "(run `matbackprop train ncuts` first)")
    limit = QUICK_TEST_IMAGES if args.quick else None
    ids = BSDS500(args.data, "test").ids[:limit]
    load_features(args.data, "test", Path(args.out) / "cache", limit)  # once, before forking
    per_method: dict[str, tuple[list, list]] = {}
    examples: dict[str, dict] = {}
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers, initializer=_init_worker, initargs=(args, seeds)) as pool:
        for image_id, results in tqdm(pool.imap(_score, range(len(ids))), total=len(ids), desc="segment and score test images", unit="image"):
            for name, (reg, bdry, segs) in results.items():
                per_method.setdefault(name, ([], []))
                per_method[name][0].append(reg)
                per_method[name][1].append(bdry)
            if len(examples) < 4:
                examples[image_id] = {name: segs for name, (_, _, segs) in results.items()}
    if args.quick:
        args.skip_gpb = True
    gpb_regions, gpb_boundaries, human = _gpb_rows(args, ids)
    summaries = {name: _summary(*rows) for name, rows in per_method.items()}
    if gpb_regions:
        summaries["gPb-owt-ucm (official UCMs)"] = _summary(gpb_regions, gpb_boundaries)
    human_summary = _summary(human, [])
    deep = [s for name, s in summaries.items() if name.startswith("DeepNCuts (")]
    methods = {name: {k: {"mean": v, "std": 0.0} for k, v in s.items()} for name, s in summaries.items()
               if not name.startswith("DeepNCuts (")}
    if deep:
        methods[f"DeepNCuts (trained, {len(deep)} seeds)"] = _mean_std(deep)
    wins = _win_fractions(per_method)
    payload = {
        "split": "test", "images": len(ids), "levels": list(LEVELS),
        "human": {"covering": human_summary["covering_ods"], "pri": human_summary["pri_ods"], "vi": human_summary["vi_ods"]},
        "methods": methods,
        "per_seed": {name: s for name, s in summaries.items() if name.startswith("DeepNCuts (")},
        "deepncuts_win_fraction": wins,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(payload, indent=2))
    _write_report(args, payload)
    _write_figures(args, examples, seeds)
    print(Path(args.report).read_text())
    return 0


def _win_fractions(per_method: dict) -> dict[str, dict[str, float]]:
    """Fraction of test images where each DeepNCuts seed's OIS covering beats each baseline's."""
    from ..metrics.bsds import _ratio

    def ois(rows):
        return np.array([_ratio(r.cnt_r, r.sum_r).max() for r in rows])

    baselines = {n: ois(rows[0]) for n, rows in per_method.items() if not n.startswith("DeepNCuts (")}
    out = {}
    for name, rows in per_method.items():
        if name.startswith("DeepNCuts ("):
            mine = ois(rows[0])
            out[name] = {b: float(np.mean(mine > theirs)) for b, theirs in baselines.items()}
    return out


def _fmt(entry: dict) -> str:
    return f"{entry['mean']:.3f}" + (f" ± {entry['std']:.3f}" if entry["std"] > 0 else "")


def _write_report(args, payload: dict) -> None:
    lines = [
        f"Test split, {payload['images']} images; hierarchy levels (k-means clusters): {', '.join(map(str, payload['levels']))}.",
        "Covering and PRI: higher is better; VI (bits): lower is better. DeepNCuts: mean ± std over seeds.",
        "",
        "| method | covering ODS | covering OIS | PRI ODS | PRI OIS | VI ODS | VI OIS | boundary F ODS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    h = payload["human"]
    lines.append(f"| human (leave one out) | {h['covering']:.3f} | | {h['pri']:.3f} | | {h['vi']:.3f} | | |")
    for name, m in payload["methods"].items():
        cells = [_fmt(m[k]) if k in m else "" for k in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if payload["deepncuts_win_fraction"]:
        lines += ["", "Fraction of test images where DeepNCuts beats a baseline on per-image best covering (OIS):", ""]
        for seed, wins in payload["deepncuts_win_fraction"].items():
            lines.append(f"- {seed}: " + "; ".join(f"vs {b}: {v:.2f}" for b, v in wins.items()))
    lines += ["", f"Evaluation wall time: {payload['wall_seconds'] / 60:.1f} min."]
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text("\n".join(lines) + "\n")


def _write_figures(args, examples: dict, seeds: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.bsds500 import BSDS500, load_ground_truth, load_image

    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    data = BSDS500(args.data, "test")
    if examples:
        names = list(next(iter(examples.values())))
        deep = sorted(n for n in names if n.startswith("DeepNCuts ("))
        shown = [n for n in names if not n.startswith("DeepNCuts (")] + deep[:1]
        cols = 2 + len(shown)
        fig, axes = plt.subplots(len(examples), cols, figsize=(2.6 * cols, 1.9 * len(examples)), squeeze=False)
        level = LEVELS.index(8)
        for row, (image_id, segs) in enumerate(examples.items()):
            axes[row, 0].imshow(load_image(data.image_dir / f"{image_id}.jpg"))
            axes[row, 1].imshow(load_ground_truth(data.gt_dir / f"{image_id}.mat")[0][0], cmap="tab20")
            for col, name in enumerate(shown):
                axes[row, 2 + col].imshow(segs[name][level], cmap="tab20")
            titles = ["image", "human"] + [n.split(" (")[0] if not n.startswith("DeepNCuts") else "DeepNCuts" for n in shown]
            if row == 0:
                for ax, t in zip(axes[0], titles):
                    ax.set_title(t, fontsize=8)
        for ax in axes.ravel():
            ax.axis("off")
        fig.suptitle(f"BSDS500 test images, {LEVELS[level]} clusters", fontsize=9)
        fig.tight_layout()
        fig.savefig(figures / "bsds_segmentations.png", dpi=90)
        plt.close(fig)
    if seeds:
        import csv

        fig, ax = plt.subplots(figsize=(5, 3))
        for run in seeds:
            with open(run / "train_log.csv", newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("loss")]
            ax.plot([int(r["epoch"]) for r in rows], [float(r["loss"]) for r in rows], marker="o", label=run.name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("projector loss (train mean)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(figures / "bsds_training_curves.png", dpi=90)
        plt.close(fig)
