"""The benchmark figure: forward+backward time of every method relative to plain autograd, per size."""

from __future__ import annotations

import math
import os
import sys

from .spectral import SpectralResult


def make_plot(path: str, results: list[SpectralResult]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return False
    panels = sorted({(r.func, r.dtype, r.device) for r in results})
    if not panels:
        return False
    all_names: list[str] = []
    for r in results:
        all_names += [m.name for m in r.methods if m.name != "autograd" and m.name not in all_names]
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(all_names)}  # same colour in every panel
    cols = 2
    rows_n = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(12, 4.2 * rows_n), squeeze=False)
    for ax, (func, dtype, device) in zip(axes.flat, panels):
        rs = [r for r in results if (r.func, r.dtype, r.device) == (func, dtype, device)]
        names = [m.name for m in rs[0].methods if m.name != "autograd" and any(m.name in r.timings.times for r in rs)]
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            xs, ys = [], []
            for j, r in enumerate(rs):
                if name in r.timings.times:
                    xs.append(j + (i - (len(names) - 1) / 2) * width)
                    ys.append(r.med(name) / r.med("autograd"))
            ax.bar(xs, ys, width=width, label=name, color=colors[name])
        ax.axhline(1.0, color="k", lw=1, ls="--")
        ax.set_yscale("log")
        ticks = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2, 3, 5, 10, 20, 50]
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xticks(range(len(rs)), [f"{r.batch}x{r.n}" for r in rs])
        ax.set_title(f"{func} {dtype} ({device})")
        ax.set_ylabel("time / plain autograd")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    import matplotlib.patches as mpatches

    handles = [mpatches.Patch(color=colors[name], label=name) for name in all_names]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9)
    fig.suptitle("forward+backward time relative to plain autograd through torch.linalg.eigh (median; lower is better)")
    fig.tight_layout(rect=(0, 0.14 / rows_n, 1, 1 - 0.08 / rows_n))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
