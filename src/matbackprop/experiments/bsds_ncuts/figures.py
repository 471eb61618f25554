"""Figures of ``matbackprop eval ncuts``: segmentations beside the human and gPb ones; training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["overlay_boundaries", "segmentation_figure", "training_curves", "run_stages"]


def overlay_boundaries(image: np.ndarray, seg: np.ndarray, colour=(255, 0, 0)) -> np.ndarray:
    """RGB ``uint8 (H, W, 3)`` copy of ``image`` with the region boundaries of ``seg`` painted."""
    from ...metrics import seg_to_boundaries

    out = np.array(image, dtype=np.uint8, copy=True)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    b = seg_to_boundaries(seg)
    out[b] = colour
    return out


def segmentation_figure(
    args,
    ids: Sequence[str],
    root: Path,
    methods: Sequence[str],
    path: Path,
    table: Mapping[str, Mapping[str, float]],
    n_images: int = 4,
) -> None:
    """Rows: images; columns: image, one human segmentation, each method at its covering-ODS threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...data.bsds500 import BSDS500, load_ground_truth, load_image
    from ...metrics import ucm_to_segmentation
    from .evaluate import load_method_ucm

    data = BSDS500(args.data, args.split)
    # one seed per group is enough for the picture
    shown = [m for m in methods if "(seed" not in m or m.endswith("(seed0)")]
    chosen = []
    for i in ids:
        if all(load_method_ucm(root, m, i, args.data, args.split) is not None for m in shown[:1]):
            chosen.append(i)
        if len(chosen) == n_images:
            break
    if not chosen or not shown:
        return
    cols = 2 + len(shown)
    fig, axes = plt.subplots(len(chosen), cols, figsize=(2.3 * cols, 1.75 * len(chosen)), squeeze=False)
    for row, image_id in enumerate(chosen):
        image = load_image(data.image_dir / f"{image_id}.jpg")
        human = load_ground_truth(data.gt_dir / f"{image_id}.mat")[0][0]
        axes[row, 0].imshow(image)
        axes[row, 1].imshow(overlay_boundaries(image, human))
        for col, m in enumerate(shown):
            ucm2 = load_method_ucm(root, m, image_id, args.data, args.split, getattr(args, "min_area_value", 0))
            if ucm2 is not None:
                seg = ucm_to_segmentation(ucm2, table[m]["covering_threshold"])
                axes[row, 2 + col].imshow(overlay_boundaries(image, seg))
    titles = ["image", "human"] + [m.split(" -> ")[0].replace(" (seed0)", "")[:28] for m in shown]
    for ax, t in zip(axes[0], titles):
        ax.set_title(t, fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"BSDS500 {args.split}: segmentations at each method's covering-ODS threshold", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def training_curves(groups: Mapping[str, Sequence[Path]], path: Path) -> None:
    """Per epoch, one column per trained group: the training objective (train mean) and the val projector
    loss when logged; below, the val edge AUC when logged (higher is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..reporting import read_train_log

    panels = {g: [r for r in runs if (r / "train_log.csv").is_file()] for g, runs in groups.items()}
    panels = {g: r for g, r in panels.items() if r}
    if not panels:
        return
    curves = {}
    for g, runs in panels.items():
        for run in runs:
            rows, offset, bounds = [], 0, []
            for stage in run_stages(run):  # a run started from another (--init-from) continues its curve
                stage_rows = read_train_log(stage / "train_log.csv")["rows"]
                rows += [(offset + int(r["epoch"]), r) for r in stage_rows]
                offset += len(stage_rows)
                if stage != run:
                    bounds.append(offset + 0.5)
            curves[g, run] = (rows, bounds)
    with_auc = any(r.get("val_edge_auc") for rows, _ in curves.values() for _, r in rows)
    n_rows = 2 if with_auc else 1
    fig, axes = plt.subplots(n_rows, len(panels), figsize=(3.2 * len(panels), 2.6 * n_rows), squeeze=False)
    for col, (g, runs) in enumerate(panels.items()):
        top = axes[0, col]
        for run in runs:
            rows, bounds = curves[g, run]
            if run == runs[0]:  # the seeds share their stage lengths: one line per stage boundary
                for x in bounds:
                    for ax in axes[:, col]:
                        ax.axvline(x, color="0.8", lw=0.8, ls=":")
            top.plot(
                [e for e, _ in rows], [float(r["loss"]) for _, r in rows], marker="o", lw=1, label=f"{run.name} train"
            )
            val = [(e, float(r["val_loss"])) for e, r in rows if r.get("val_loss")]
            if val:
                top.plot([e for e, _ in val], [v for _, v in val], ls="--", marker=".", lw=1, label=f"{run.name} val")
            auc = [(e, float(r["val_edge_auc"])) for e, r in rows if r.get("val_edge_auc")]
            if with_auc and auc:
                axes[1, col].plot([e for e, _ in auc], [v for _, v in auc], marker=".", lw=1, label=run.name)
        top.set_title(g, fontsize=8)
        top.legend(fontsize=6)
        axes[-1, col].set_xlabel("epoch")
        if with_auc:
            axes[1, col].legend(fontsize=6)
    axes[0, 0].set_ylabel("loss (train: objective,\nval: projector loss)", fontsize=8)
    if with_auc:
        axes[1, 0].set_ylabel("val edge AUC", fontsize=8)
        limits = [ax.get_ylim() for ax in axes[1]]  # one scale across groups, to compare them
        for ax in axes[1]:
            ax.set_ylim(min(lo for lo, _ in limits), max(hi for _, hi in limits))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_stages(run: Path) -> list[Path]:
    """The runs that led to ``run``, first to last: its ``--init-from`` run (recursively), then itself.
    A starting run whose folder or training log is gone ends the chain."""
    import json

    chain = [run]
    seen = {run.resolve()}
    while True:
        config = chain[0] / "config.json"
        start = json.loads(config.read_text()).get("init_from") if config.is_file() else None
        if not start:
            return chain
        path = Path(start)
        if path.resolve() in seen or not (path / "train_log.csv").is_file():
            return chain
        seen.add(path.resolve())
        chain.insert(0, path)
