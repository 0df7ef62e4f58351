"""The MLflow UI's view of alexp's runs: the saved chart views, the experiment tags and each strategy's colour.

MLflow 3 opens an experiment on its GenAI pages (traces, token usage) by default, even with the experiment tag
`mlflow.experimentKind` set (checked in headless Chromium); the URL does it: `workflowType=machine_learning`
opens the runs ("Model training"), `compareRunsMode=CHART` the chart view, and `viewStateShareKey=K` applies
the view saved in the experiment tag `mlflow.sharedViewState.K` (what the UI's "Share" button writes). alexp
saves two, when it creates or uses an experiment (alexp.tracking), and names kappa the primary metric:

- `alexp-curves`: every run, kappa first and the other curves in a useful order against the label count, the
  runs table with kappa and the settings as columns;
- `alexp-by-strategy`: the same charts with the runs grouped by `acquisition`, one line per strategy (the mean
  over its runs) in a band from the lowest to the highest run.

A run's colour is its tag `mlflow.runColor`; a group's colour is kept by the browser (local storage
`experimentRunColors`, keyed `param.acquisition.<strategy>`), out of a server's reach: `alexp ui` serves MLflow
with one extra page (alexp.ui_app) that writes the strategies' colours there and goes on to the view, so the
grouped lines have the colours of their runs. A colour picked in the UI is kept.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse

SHARE_KEY = "alexp-curves"  # every run
GROUPED_KEY = "alexp-by-strategy"  # one line and band per strategy
GROUP_BY = "acquisition"
# Charts in this order: the agreement with the truth first, then what the labels bought, then timings.
CURVES = ("kappa", "average_precision", "f1", "positives_labeled", "oracle_kappa", "recall", "precision",
          "accuracy", "cost", "pick_distance")
TIMERS = ("fit_seconds", "select_seconds", "test_seconds")
COLUMNS = ("metrics.kappa", "metrics.n_labels", "params.acquisition", "params.oracle", "params.seed",
           "params.data", "params.features", "params.model", "params.budget")


# One colour per strategy (the seeds of a strategy share it): random grey, the rest from matplotlib's tab10.
COLORS = {"random": "#7f7f7f", "entropy": "#1f77b4", "margin": "#ff7f0e", "least_confidence": "#2ca02c",
          "boundary_pairs": "#9467bd", "coreset": "#d62728", "badge": "#8c564b", "cluster_margin": "#e377c2",
          "density_weighted": "#bcbd22", "class_balanced": "#17becf", "bald": "#393b79", "batchbald": "#637939",
          "vote_entropy": "#8c6d31", "kl_disagreement": "#843c39",
          "greedy_oracle": "#000000"}  # the upper bound that cheats: black


def run_color(acquisition: str) -> str:
    """The colour of a strategy's runs in MLflow's charts (tag mlflow.runColor); a strategy alexp does not ship
    gets one of its palette by a stable hash of its name."""
    if acquisition in COLORS:
        return COLORS[acquisition]
    palette = sorted(set(COLORS.values()) - {COLORS["greedy_oracle"]})  # black stays the bound's
    return palette[int(hashlib.sha256(acquisition.encode()).hexdigest(), 16) % len(palette)]


def _column(key: str) -> str:
    kind, name = key.split(".", 1)
    return f"{kind}.`{name}`"  # the UI's canonical column key


def view_state(grouped: bool = False) -> dict:
    """A saved view: sections, charts (label count on the x axis), runs-table columns, every run shown; `grouped`:
    the runs grouped by strategy, each group drawn as its mean with a min-max band."""
    sections = {"Curves": "alexp-curves", "Timing": "alexp-timing"}

    def chart(metric: str, section: str) -> dict:
        return {"uuid": f"alexp-{metric}", "type": "LINE", "runsCountToCompare": 100, "metricSectionId": section,
                "deleted": False, "isGenerated": True, "metricKey": metric, "displayName": metric,
                "selectedMetricKeys": [metric], "lineSmoothness": 0, "xAxisScaleType": "linear",
                "scaleType": "linear", "range": {}, "xAxisKey": "metric", "selectedXAxisMetricKey": "n_labels",
                "yAxisKey": "metric", "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": False,
                "useGlobalLineSmoothing": True}

    return {
        "compareRunCharts": [chart(m, sections["Curves"]) for m in CURVES]
        + [chart(m, sections["Timing"]) for m in TIMERS],
        "compareRunSections": [{"uuid": uuid, "name": name, "display": name == "Curves", "isReordered": True,
                                "deleted": False, "isGenerated": False, "columns": 2, "cardHeight": 400}
                               for name, uuid in sections.items()],  # two charts a row: room for the legends
        "isAccordionReordered": True,
        "selectedColumns": [_column(c) for c in COLUMNS],
        "columnOrder": [_column(c) for c in COLUMNS],
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
        "useGroupedValuesInCharts": True,
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "param", "groupByData": GROUP_BY}]}
        if grouped else None,
        "groupsExpanded": {group: False for group in group_colors()},  # the table lists strategies, runs folded
        "globalLineChartConfig": {"xAxisKey": "metric", "lineSmoothness": 0, "selectedXAxisMetricKey": "n_labels"},
    }


def experiment_tags() -> dict[str, str]:
    """Tags alexp sets on each experiment it logs to: a training experiment, kappa first, the saved view."""
    return {"mlflow.experimentKind": "custom_model_development",
            "mlflow.experiment.primaryMetric.name": "kappa",
            f"mlflow.sharedViewState.{SHARE_KEY}": json.dumps(view_state(), separators=(",", ":")),
            f"mlflow.sharedViewState.{GROUPED_KEY}": json.dumps(view_state(grouped=True), separators=(",", ":"))}


def url(base: str, experiment_id: str, key: str = SHARE_KEY) -> str:
    """The page of an experiment's runs in the chart view with the saved view `key`."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&compareRunsMode=CHART&viewStateShareKey={key}")


def opener(base: str, experiment_id: str, key: str, strategies: list[str]) -> str:
    """The address `alexp ui` prints: its page that sets the strategies' colours and the model-training layout in
    the browser, then opens the saved view `key` (alexp.ui_app)."""
    query = urllib.parse.urlencode({"experiment": experiment_id, "view": key, "strategies": ",".join(strategies)},
                                   safe=",")
    return f"{base.rstrip('/')}/alexp/open?{query}"


def group_colors(strategies=COLORS) -> dict[str, str]:
    """The browser's colour of each strategy's group in a view grouped by `acquisition` (keys as MLflow makes
    them: `param.acquisition.<value>`), the colour of the strategy's runs."""
    return {f"param.{GROUP_BY}.{name}": run_color(name) for name in strategies}
