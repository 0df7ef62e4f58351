"""The report's figures: mean curves over seeds with their bootstrap bands, readable with ~20 conditions."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl

STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v")


def merge_identical(curves: pl.DataFrame, x: str) -> list[tuple[str, pl.DataFrame]]:
    """(label, curve) per distinct curve: conditions whose mean curves are identical are drawn once, named
    together ('a = b (identical curves)'), so that no line hides another."""
    groups: dict[tuple, list[tuple[str, pl.DataFrame]]] = {}
    for (condition,), part in curves.group_by("condition", maintain_order=True):
        key = (tuple(part[x].to_list()), tuple(part["mean"].to_list()))
        groups.setdefault(key, []).append((condition, part))
    out = []
    for members in groups.values():
        names = [c for c, _ in members]
        label = names[0] if len(names) == 1 else " = ".join(names) + " (identical curves)"
        out.append((label, members[0][1]))
    return out


def figures(curves: pl.DataFrame, out: Path, title: str, metric: str = "kappa",
            targets: dict[str, float] | None = None, baselines: set[str] | frozenset = frozenset(),
            prefix: str = "") -> list[Path]:
    """`<metric>_vs_labels.png` (and `<metric>_vs_cost.png` when cost is not the label count) into `out`.

    One line per distinct curve with its band; a dashed line per target. When the baselines run far beyond the
    other conditions' labels, a second panel zooms on the other conditions' label range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    costs_differ = curves.filter(pl.col("cost_mean").is_not_null()
                                 & ((pl.col("cost_mean") - pl.col("n_labels")).abs() > 1e-9)).height > 0
    for x, xlabel in (("n_labels", "labels"), ("cost_mean", "cost of labels")):
        if x == "cost_mean" and not costs_differ:
            continue
        data = curves.drop_nulls(x).filter(pl.col(x) > 0)
        if data.is_empty():
            continue
        lines = merge_identical(data, x)
        others = data.filter(~pl.col("condition").is_in(list(baselines)))
        zoom = others.height > 0 and data[x].max() > 3 * others[x].max()
        fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(15 if zoom else 10, 5.5), dpi=100, squeeze=False)
        for ax, limit in zip(axes[0], (None, others[x].max() if zoom else None)):
            draw(ax, lines, x, limit, targets or {})
            ax.set_xlabel(f"{xlabel} (log scale)" if limit is None else f"{xlabel} (up to {limit:,.0f})")
            ax.set_ylabel(f"{metric}, mean over seeds")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_title("all labels" if zoom else "")
        if zoom:
            axes[0][1].set_title("the non-baseline conditions' range")
        fig.suptitle(f"{title}: {metric} vs {xlabel}, 95% bootstrap bands over seeds", fontsize=11)
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.tight_layout()
        path = out / f"{prefix}{metric}_vs_{'labels' if x == 'n_labels' else 'cost'}.png"
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def draw(ax, lines: list[tuple[str, pl.DataFrame]], x: str, limit: float | None, targets: dict[str, float]) -> None:
    """Curves with bands on one axis; `limit` zooms on labels up to it (linear axis), else a log axis."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = plt.get_cmap("tab10").colors
    styles = itertools.cycle(itertools.product(STYLES, colors))  # 40 distinct colour x line style pairs
    for i, (label, part) in enumerate(lines):
        style, color = next(styles)
        if limit is not None:  # up to the first point past the limit, so that the line runs to the frame
            past = part.filter(pl.col(x) > limit * 1.001)[x].min()
            part = part.filter(pl.col(x) <= (past if past is not None else limit))
        xs = part[x].to_numpy()
        ax.plot(xs, part["mean"].to_numpy(), linestyle=style, color=color, marker=MARKERS[i % len(MARKERS)],
                markersize=3, linewidth=1.4, label=label)
        low, high = part["low"].to_numpy(), part["high"].to_numpy()
        if not np.all(np.isnan(low)):  # fainter bands when many overlap
            ax.fill_between(xs, low, high, color=color, alpha=0.12 if len(lines) <= 6 else 0.05, linewidth=0)
    for (name, target), dash in zip(targets.items(), itertools.cycle(((4, 2), (1, 1), (6, 2, 1, 2)))):
        if target == target:  # not NaN
            ax.axhline(target, color="0.4", dashes=dash, linewidth=1, label=f"target {target:.3f} ({name})")
    if limit is not None:
        ax.set_xlim(right=limit * 1.02)
    else:
        ax.set_xscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2, 5)))
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
