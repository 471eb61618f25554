"""Evaluation of the DeepO2P experiment: aggregate the finished runs into the table, figures and JSON.

Seed statistics follow :mod:`matbackprop.experiments.reporting` (mean ± sample std, ``ddof = 1``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ...models.deepo2p import MODEL_KINDS
from ..reporting import STD_NOTE, format_mean_std, generated_markers, mean_std, plot_training_curves
from ..reporting import write_generated_section as _write_section
from .config import ABLATIONS, SPLIT_FILE, TITLES, EvalConfig

__all__ = ["GENERATED_BEGIN", "GENERATED_END", "write_report"]

GENERATED_BEGIN, GENERATED_END = generated_markers("matbackprop eval o2p")
PAGE_TITLE = "MSRC-v2 region classification (DeepO2P)"


def _finished_runs(out: Path) -> dict[str, list[dict[str, Any]]]:
    """``name -> [metrics of each seed]`` for the runs under ``<out>/runs`` that wrote metrics.json."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((out / "runs").glob("*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        m["dir"] = str(path.parent)
        runs.setdefault(m["name"], []).append(m)
    return runs


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "accuracy": mean_std(r["accuracy"] for r in runs),
        "mean_class_accuracy": mean_std(r["mean_class_accuracy"] for r in runs),
        "seeds": sorted(r["seed"] for r in runs),
        "wall_seconds_per_run": mean_std(r["wall_seconds"] for r in runs),
        "train_seconds_per_run": mean_std(r["train_seconds"] for r in runs),
        "skipped_steps": int(sum(r["skipped"] for r in runs)),
        "epochs": runs[0]["epochs"],
        # Runs written before the per-model rate existed all used the then-default 1e-3.
        "head_lr": sorted({float(r.get("head_lr", 1e-3)) for r in runs}),
        "quick": any(r.get("quick") for r in runs),
    }


def _pct(s: dict[str, float], seeds: int = 2) -> str:
    return format_mean_std(s, seeds, digits=1, scale=100)


def _plot_confusion(confusion: np.ndarray, title: str, path: Path) -> None:
    """Row-normalised confusion matrix (rows: true class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...data.msrc import MSRC_CLASSES

    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(MSRC_CLASSES)), MSRC_CLASSES, rotation=90, fontsize=7)
    ax.set_yticks(range(len(MSRC_CLASSES)), MSRC_CLASSES, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _verdict(methods: dict[str, dict[str, Any]]) -> list[str]:
    """Plain statements: does (3) beat (1) and (2)? "Beats" only where the region accuracy is higher by
    more than the sum of the two seed standard deviations; within that spread the two are level."""
    lines: list[str] = []
    if "deepo2p" not in methods:
        return lines
    d = methods["deepo2p"]
    for other in ("avg", "o2p_frozen"):
        if other not in methods:
            continue
        o = methods[other]
        parts, verdicts = [], {}
        for key, label in (("accuracy", "region accuracy"), ("mean_class_accuracy", "mean class accuracy")):
            diff = 100 * (d[key]["mean"] - o[key]["mean"])
            spread = 100 * (d[key]["std"] + o[key]["std"])
            verdicts[key] = "level" if abs(diff) <= spread else ("higher" if diff > 0 else "lower")
            parts.append(f"{label} {diff:+.1f} points (sum of the seed standard deviations {spread:.1f})")
        verb = {"higher": "beats", "lower": "is worse than", "level": "does not clearly beat"}[verdicts["accuracy"]]
        lines.append(f"- DeepO2P (3) {verb} {TITLES[other]}: {'; '.join(parts)}.")
    return lines


def _markdown(
    methods: dict[str, dict[str, Any]],
    ablations: dict[str, dict[str, Any]],
    runs: dict[str, list[dict[str, Any]]],
    timing: dict[str, Any] | None,
    step_times: dict[str, Any] | None,
    figures: dict[str, str],
    markdown_path: Path,
) -> str:
    def rel(p: str) -> str:
        try:
            return str(Path(p).resolve().relative_to(markdown_path.resolve().parent))
        except ValueError:
            return p

    out = [
        "### Region classification, held-out test images",
        "",
        "| model | region accuracy (%) | mean class accuracy (%) | seeds | head learning rate | "
        "wall time per run (s) | skipped steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in methods.items():
        n = len(s["seeds"])
        out.append(
            f"| {TITLES[name]} | {_pct(s['accuracy'], n)} | {_pct(s['mean_class_accuracy'], n)} | "
            f"{n} | {' / '.join(f'{lr:g}' for lr in s['head_lr'])} | {s['wall_seconds_per_run']['mean']:.0f} | {s['skipped_steps']} |"
        )
    out += [
        "",
        f"{STD_NOTE} Wall time: training epochs plus the per-epoch "
        "evaluation, from the runs' `train_log.csv`, without the one-time feature cache.",
        "",
    ]
    out += _verdict(methods)
    if ablations:
        ms = (step_times or {}).get("ms", {})
        out += [
            "",
            "### Ablations of DeepO2P (3)",
            "",
            "| eps | route | spectral step | region accuracy (%) | mean class accuracy (%) | seeds | "
            "training time per run (s) | step (ms) | O2P part (ms) | steps with non-finite gradients |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, s in ablations.items():
            a = ABLATIONS[name]
            step = ms.get(name, {}).get("step", {}).get("median")
            o2p = ms.get(name, {}).get("o2p", {}).get("median")
            n, t = len(s["seeds"]), s["train_seconds_per_run"]
            seconds = format_mean_std(t, n, digits=0)
            out.append(
                f"| {a['eps']:g} | {a['route']} | {a['spectral_dtype']} | {_pct(s['accuracy'], n)} | "
                f"{_pct(s['mean_class_accuracy'], n)} | {n} | {seconds} | "
                f"{'' if step is None else f'{step:.0f}'} | {'' if o2p is None else f'{o2p:.1f}'} | "
                f"{s['skipped_steps']} |"
            )
        out += [
            "",
            "Training time per run: the epochs only (`seconds` column of `train_log.csv`, no evaluation), "
            "mean ± sample std over seeds. Non-finite: the training engine's `skipped` column, summed over epochs "
            "and seeds.",
        ]
        if step_times:
            out += [
                f"Step and O2P part: median of {step_times['rounds']} interleaved rounds, forward + backward "
                f"of one training batch ({step_times['images']} images, {step_times['regions']} regions), "
                f"{step_times['threads']} thread(s); the O2P part is pooling + spectral step + backward "
                "on fixed 64-channel features."
            ]
    out += [
        "",
        "### Wall time of each run",
        "",
        "| run | seed | epochs | training (s) | evaluation (s) | total (s) |",
        "|---|---|---|---|---|---|",
    ]
    order = [*MODEL_KINDS, *ABLATIONS]
    for name, rs in sorted(runs.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        for r in sorted(rs, key=lambda r: r["seed"]):
            out.append(
                f"| {name} | {r['seed']} | {r['epochs']} | {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} "
                f"| {r['wall_seconds']:.0f} |"
            )
    if timing:
        invocations = timing.get("invocations", [timing])
        out += [
            "",
            f"`train --all`: {timing['total_seconds'] / 60:.1f} min in all, one thread, "
            f"in {len(invocations)} invocation(s) (a later one trains only the runs still missing):",
        ]
        for inv in invocations:
            out.append(
                f"- {inv.get('started_utc', 'first')}: {inv['total_seconds'] / 60:.1f} min, "
                f"{len(inv['runs'])} runs, {inv['cache_seconds']:.0f} s feature caches"
                + (f", {inv['benchmark_seconds']:.0f} s step timing" if "benchmark_seconds" in inv else "")
                + "."
            )
    out += [""] + [f"![{k}]({rel(v)})" for k, v in figures.items()]
    return "\n".join(out)


def write_report(cfg: EvalConfig) -> int:
    """``matbackprop eval o2p``: aggregate the finished runs under ``cfg.out`` into the table, the
    figures, ``cfg.results`` (JSON) and the generated section of ``cfg.markdown``. Returns the exit status."""
    out = Path(cfg.out)
    runs = _finished_runs(out)
    if not runs:
        print(
            f"error: no finished runs under {out / 'runs'}; train first (matbackprop train o2p --all)", file=sys.stderr
        )
        return 1
    methods = {m: _summary(runs[m]) for m in MODEL_KINDS if m in runs}
    ablations = {a: _summary(runs[a]) for a in ABLATIONS if a in runs}
    missing = [m for m in MODEL_KINDS if m not in runs]
    if missing:
        print(f"warning: no finished runs of {missing}", file=sys.stderr)
    figures_dir = Path(cfg.figures)
    figures: dict[str, str] = {}
    curves = figures_dir / "msrc_curves.png"
    plot_training_curves({m: [Path(r["dir"]) for r in runs[m]] for m in MODEL_KINDS if m in runs}, curves)
    figures["training curves (top: loss; bottom: test accuracy per seed, dotted: training accuracy)"] = str(curves)
    for name in ("deepo2p", "o2p_frozen", "avg"):
        if name in runs:
            confusion = np.sum([np.asarray(r["confusion"]) for r in runs[name]], axis=0)
            path = figures_dir / f"msrc_confusion_{name}.png"
            _plot_confusion(confusion, f"{TITLES[name]}: test regions, {len(runs[name])} seeds pooled", path)
            figures[f"confusion matrix, {TITLES[name]}"] = str(path)
    timing_path, steps_path = out / "run_all.json", out / "step_times.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else None
    step_times = json.loads(steps_path.read_text()) if steps_path.exists() else None
    result = {
        "split": SPLIT_FILE,
        "methods": {
            m: {
                "accuracy": s["accuracy"],
                "mean_class_accuracy": s["mean_class_accuracy"],
                "seeds": s["seeds"],
                "epochs": s["epochs"],
                "head_lr": s["head_lr"],
                "wall_seconds_per_run": s["wall_seconds_per_run"],
            }
            for m, s in methods.items()
        },
        "ablations": {
            a: {k: v for k, v in ABLATIONS[a].items() if k != "seeds"}
            | s
            | ({"step_ms": step_times["ms"][a]} if step_times and a in step_times["ms"] else {})
            for a, s in ablations.items()
        },
        "quick": any(s["quick"] for s in [*methods.values(), *ablations.values()]),
    }
    if timing:
        result["total_wall_seconds"] = timing["total_seconds"]
    results_path = Path(cfg.results)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(result, indent=2) + "\n")
    markdown_path = Path(cfg.markdown)
    section = _markdown(methods, ablations, runs, timing, step_times, figures, markdown_path)
    _write_section(markdown_path, section, (GENERATED_BEGIN, GENERATED_END), PAGE_TITLE)
    print(section)
    print(f"\nwrote {results_path}, {markdown_path} and {len(figures)} figures in {figures_dir}")
    return 0
