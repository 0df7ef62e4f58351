"""The report's figures: mean curves over seeds with their bootstrap bands, readable with ~20 conditions."""

from __future__ import annotations

import itertools
import re
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


def strategy_of(condition: str) -> str | None:
    """The acquisition strategy a condition's name contains ('expert-boundary_pairs', 'acquisition=margin'),
    the longest shipped name found as a whole word; None when it names none."""
    from alexp.mlflow_view import COLORS

    found = [name for name in COLORS if re.search(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", condition)]
    return max(found, key=len) if found else None


def line_styles(labels: list[str]) -> dict[str, tuple[str, str, str]]:
    """(colour, line style, marker) per condition: the colour of its strategy, as in the MLflow UI (`run_color`), so a
    strategy looks the same in every view and on every dataset; conditions sharing a strategy (expert- and crowd-
    labelled, say) differ by line style (then marker), given in the order of their names. Names without a strategy
    get a colour by a stable hash of the name."""
    from alexp.mlflow_view import run_color

    colors = {label: run_color(strategy_of(label) or label) for label in labels}
    out = {}
    for color in dict.fromkeys(colors.values()):
        for i, label in enumerate(sorted(k for k, c in colors.items() if c == color)):
            out[label] = (color, STYLES[i % len(STYLES)], MARKERS[i // len(STYLES) % len(MARKERS)])
    return out


def figures(curves: pl.DataFrame, out: Path, title: str, metric: str = "kappa",
            targets: dict[str, float] | None = None, baselines: set[str] | frozenset = frozenset(),
            prefix: str = "", counted: str = "labels", marked: str | None = None,
            stops: dict[str, tuple[str, float]] | None = None) -> list[Path]:
    """`<metric>_vs_labels.png` (and `<metric>_vs_cost.png` when cost is not the label count) into `out`, each
    with a vector `.pdf` beside it, sized for a page's width (7 in) with fonts of 8 pt or more.

    One line per distinct curve with its band; a dashed line per target; `counted` names the x axis (labels, or
    judgments bought); the condition `marked` (a pre-declared comparison) is drawn thicker and named so in the legend;
    `stops` {condition: (rule, labels)} marks where a condition's recommended stopping rule stops (a star on its
    curve at the median label count over seeds). When the baselines run far beyond the other conditions' labels, a
    second panel zooms on the other conditions' label range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    costs_differ = curves.filter(pl.col("cost_mean").is_not_null()
                                 & ((pl.col("cost_mean") - pl.col("n_labels")).abs() > 1e-9)).height > 0
    for x, xlabel in (("n_labels", counted), ("cost_mean", "cost of labels")):
        if x == "cost_mean" and not costs_differ:
            continue
        data = curves.drop_nulls(x).filter(pl.col(x) > 0)
        if data.is_empty():
            continue
        lines = [(f"{label} (pre-declared)" if label == marked else label, part)
                 for label, part in merge_identical(data, x)]
        others = data.filter(~pl.col("condition").is_in(list(baselines)))
        zoom = others.height > 0 and data[x].max() > 3 * others[x].max()
        fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(7, 3.2 if zoom else 4), dpi=200, squeeze=False)
        for ax, limit in zip(axes[0], (None, others[x].max() if zoom else None)):
            draw(ax, lines, x, limit, targets or {}, stops if x == "n_labels" else None)
            ax.set_xlabel(f"{xlabel} (log scale)" if limit is None else f"{xlabel} (up to {limit:,.0f})")
            ax.set_ylabel(f"{metric}, mean over seeds", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.xaxis.label.set_size(8)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_title(f"all {xlabel}" if zoom else "", fontsize=8)
        if zoom:
            axes[0][1].set_title("the non-baseline conditions' range", fontsize=8)
        fig.suptitle(f"{title}: {metric} vs {xlabel}, 95% bootstrap bands over seeds", fontsize=9)
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=2 if len(names) > 4 else len(names), frameon=False)
        fig.tight_layout()
        path = out / f"{prefix}{metric}_vs_{'labels' if x == 'n_labels' else 'cost'}.png"
        fig.savefig(path, bbox_inches="tight")
        fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def draw(ax, lines: list[tuple[str, pl.DataFrame]], x: str, limit: float | None, targets: dict[str, float],
         stops: dict[str, tuple[str, float]] | None = None) -> None:
    """Curves with bands on one axis; `limit` zooms on labels up to it (linear axis), else a log axis."""
    import matplotlib.ticker

    looks = line_styles([label for label, _ in lines])
    for label, part in lines:
        color, style, marker = looks[label]
        if limit is not None:  # up to the first point past the limit, so that the line runs to the frame
            past = part.filter(pl.col(x) > limit * 1.001)[x].min()
            part = part.filter(pl.col(x) <= (past if past is not None else limit))
        xs = part[x].to_numpy()
        ax.plot(xs, part["mean"].to_numpy(), linestyle=style, color=color, marker=marker,
                markersize=3, linewidth=2.6 if label.endswith("(pre-declared)") else 1.4, label=label)
        for condition, (rule, at) in (stops or {}).items():
            named = label == condition or label.startswith(f"{condition} ") or f"{condition} = " in label
            if named and xs[0] <= at <= xs[-1]:
                y = float(np.interp(np.log(at), np.log(xs), part["mean"].to_numpy()))
                ax.plot([at], [y], marker="*", markersize=11, color=color, markeredgecolor="black",
                        linestyle="none", label=f"{condition}: {rule} stops (median, {at:.0f})")
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
