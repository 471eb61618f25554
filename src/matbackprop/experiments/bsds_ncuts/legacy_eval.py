"""The k-means evaluation of DeepNCuts on BSDS500 (the protocol before the UCM hierarchy).

Each test image is embedded on the stride-4 grid (:func:`.inference.embed_image`), segmented by
k-means on the embedding's rows for a range of cluster counts (one hierarchy level each) at full
resolution, and scored (covering, PRI, VI at ODS/OIS, boundary F) with :mod:`matbackprop.metrics`,
beside classic normalized cuts and the official gPb-owt-ucm hierarchies. The UCM-based evaluation of
issue 11 replaces it as ``matbackprop eval ncuts`` (module ``.evaluate``) when present.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ...train import load_checkpoint, save_checkpoint
from .config import DEFAULT_DATA, DEFAULT_OUT
from .inference import embed_image, load_model

__all__ = ["add_eval_arguments", "evaluate"]

QUICK_TEST_IMAGES = 20
STRIDE = 4  # node grid of the embedding (k-means on 154,401 full-resolution rows would dominate the time)


LEVELS = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30)  # clusters per hierarchy level
METRICS = ("covering_ods", "covering_ois", "pri_ods", "pri_ois", "vi_ods", "vi_ois", "boundary_f_ods")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=DEFAULT_DATA, help="BSDS500 folder (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="run directory with seed*/model.pt (default: %(default)s)")
    parser.add_argument(
        "--results", default="results/bsds500.json", help="machine-readable results (default: %(default)s)"
    )
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
        from ...data.bsds500 import BSDS500

        self.data = BSDS500(args.data, "test")
        self.args = args
        self.models = {f"DeepNCuts ({run.name})": load_model(run) for run in seeds}

    @torch.no_grad()
    def embeddings(self, image_id: str, image: np.ndarray) -> dict[str, tuple[torch.Tensor, tuple[int, int]]]:
        from ..classic_ncuts import classic_ncut_embedding

        out = {"classic NCuts (colour, position, texture)": classic_ncut_embedding(image, stride=10)}
        for name, model in self.models.items():
            _, Z, _ = embed_image(model, image, stride=STRIDE)
            out[name] = (Z.reshape(-1, Z.shape[-1]), (Z.shape[0], Z.shape[1]))
        return out

    def __call__(self, index: int) -> tuple[str, dict]:
        from ...metrics import evaluate_regions, evaluate_segmentation_boundaries
        from ..segment import segment_embedding

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
    assert _SCORER is not None, "worker not initialised"
    return _SCORER(index)


def _gpb_rows(args, ids: list[str]) -> tuple[list, list, list]:
    """Official gPb-owt-ucm hierarchies (99 thresholds) and the human leave-one-out row, cached."""
    from scipy.io import loadmat

    from ...data.bsds500 import BSDS500, load_ground_truth
    from ...metrics import evaluate_human_regions, evaluate_ucm_boundaries, evaluate_ucm_regions

    cache = Path(args.out) / "cache" / f"gpb_human_{len(ids)}.pt"
    if cache.exists():
        from ...metrics.bsds import ImageBoundaryEval, ImageRegionEval

        return load_checkpoint(cache, safe_globals=[ImageRegionEval, ImageBoundaryEval])["rows"]
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
    from ...metrics import collect_boundaries, collect_regions

    r = collect_regions(regions)
    out = {
        "covering_ods": r.cover_ods,
        "covering_ois": r.cover_ois,
        "covering_best": r.cover_best,
        "pri_ods": r.pri_ods,
        "pri_ois": r.pri_ois,
        "vi_ods": r.vi_ods,
        "vi_ois": r.vi_ois,
    }
    if boundaries:
        b = collect_boundaries(boundaries)
        out.update({"boundary_f_ods": b.ods_f, "boundary_f_ois": b.ois_f, "boundary_ap": b.ap})
    return out


def _mean_std(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    from ..reporting import mean_std  # sample std (ddof = 1); 0 for one seed

    return {k: mean_std(r[k] for r in rows) for k in rows[0]}


def evaluate(args: argparse.Namespace) -> int:
    """Score every method on the test split; write the JSON, the Markdown table and the figures."""
    import multiprocessing as mp

    from ...data.bsds500 import BSDS500

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    seeds = sorted(p.parent for p in Path(args.out).glob("seed*/model.pt"))
    for run in seeds:  # refuse an unsafe or damaged model.pt now, not inside a worker after the features
        load_checkpoint(run / "model.pt")
    if not seeds:
        print(
            f"no trained model under {args.out}/seed*/model.pt: the DeepNCuts rows will be missing "
            "(run `matbackprop train ncuts` first)"
        )
    limit = QUICK_TEST_IMAGES if args.quick else None
    ids = BSDS500(args.data, "test").ids[:limit]
    per_method: dict[str, tuple[list, list]] = {}
    examples: dict[str, dict] = {}
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers, initializer=_init_worker, initargs=(args, seeds)) as pool:
        for image_id, results in tqdm(
            pool.imap(_score, range(len(ids))), total=len(ids), desc="segment and score test images", unit="image"
        ):
            for name, (reg, bdry, _) in results.items():
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
    methods = {
        name: {k: {"mean": v, "std": 0.0} for k, v in s.items()}
        for name, s in summaries.items()
        if not name.startswith("DeepNCuts (")
    }
    if deep:
        methods[f"DeepNCuts (trained, {len(deep)} seeds)"] = _mean_std(deep)
    wins = _win_fractions(per_method)
    payload = {
        "split": "test",
        "images": len(ids),
        "levels": list(LEVELS),
        "human": {
            "covering": human_summary["covering_ods"],
            "pri": human_summary["pri_ods"],
            "vi": human_summary["vi_ods"],
        },
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
    from ...metrics.pooling import count_ratio

    def ois(rows):
        return np.array([count_ratio(r.cnt_r, r.sum_r).max() for r in rows])

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

    from ...data.bsds500 import BSDS500, load_ground_truth, load_image

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
            titles = ["image", "human"] + [
                n.split(" (")[0] if not n.startswith("DeepNCuts") else "DeepNCuts" for n in shown
            ]
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
