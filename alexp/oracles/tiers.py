"""Tiered labelling: cheap labels for most items, dearer ones where they matter, decided per item.

`Tiers` is one oracle made of several, each a tier with its own price (its `cost_per_label`): every requested
item is asked of the first tier of `route`, and a rule (`escalate`) decides, item by item, whether to buy the
next tier's label as well; the last label bought is the item's label. `ModelLabels` makes any model a tier (the
zero-shot scout, or a model fitted elsewhere), with its confidence.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError, faults
from alexp.metrics import agreement
from alexp.oracles.base import Oracle, accepted
from alexp.oracles.simulated import Simulated

log = logging.getLogger(__name__)

RULES = ("never", "confidence", "disagreement", "uncertain")


class ModelLabels(Simulated):
    """A model as a labeller: its predicted class for every pool item, with its confidence (the predicted class's
    probability). `model` is any classifier that needs no labels here: the zero-shot scout (`alexp.models.ZeroShot`,
    given the run's sentence model) or one fitted elsewhere (e.g. `{_target_: joblib.load, filename: m.joblib}`,
    a model trained on other reviews). A positive answer is P(positive) >= `threshold`."""

    def __init__(self, model: Any, pool_features: Any, features: Any = None, threshold: float = 0.5,
                 cost_per_label: float = 0.01):
        from alexp import models

        if not 0 < threshold < 1:
            raise AlexpError(f"threshold must be between 0 and 1, got {threshold!r}")
        if getattr(model, "features", False) is None:  # the zero-shot scout embeds its descriptions with the run's
            model.features = features
        if not hasattr(model, "predict_proba"):
            raise AlexpError(f"model must be a fitted classifier with predict_proba; got {type(model).__name__}")
        p = models.predict_proba(model, pool_features, 2)[:, 1]
        super().__init__((p >= threshold).astype(np.int64), cost_per_label)
        self.confidences = np.maximum(p, 1 - p)


class Tiers(Oracle):
    """Several oracles as tiers of one, with a rule that decides per item which tiers to buy.

    `tiers` maps a tier's name to `{oracle: <any oracle config>, weight: w}`; its price is that oracle's cost
    per item. `route` lists the tiers an item may go through, cheapest first: every requested item is asked of
    the first; `escalate` decides, item by item, whether to go on to the next, and the last label bought is the
    item's label (all bought labels are kept, with their tier and price, in `labeled.parquet`):

    - `never`: the first tier only (a route of one tier: that tier's own run).
    - `confidence`: when the tier's own confidence in its answer (a crowd's vote share, a model's probability)
      is below `threshold`.
    - `disagreement`: when the current model's predicted class differs from the tier's answer.
    - `uncertain`: the `share` of each batch whose items the current model is least sure of (probability nearest
      its decision threshold): cheap labels for a wide batch, dearer ones for its boundary (the seed's shape).

    Rules that read the model escalate nothing before there is one (the initial set, unless a scout). Under a
    money budget (`budget.max_cost`) an escalation is bought only while the money left pays for it, the items
    that need it most first, so the run never spends past the budget. No tier is asked for an item twice: every
    label bought and every decision is journaled beside the run's state (a killed run resumes with them).
    `weight`s weight the model's training labels by the tier that gave them.

    Each tier's noise is drawn from its own stream (`oracle`, keyed by the tier's name), so tiers err
    independently and a tier's answers are the same in every route; a route of one tier draws from the run's
    own oracle stream, as that oracle alone would, so that it is exactly that oracle's run.
    """

    reads_model = True

    def __init__(self, tiers: Mapping[str, Any], route: Sequence[str], truth: NDArray, rng: np.random.Generator,
                 seed: int = 0, escalate: str = "never", threshold: float = 0.8, share: float = 0.2,
                 context: Mapping | None = None, pool_features: Any = None, features: Any = None):
        from hydra.utils import get_class
        from hydra.utils import instantiate as hydra_instantiate
        from omegaconf import OmegaConf

        from alexp.config import prefixed
        from alexp.seeds import stream

        super().__init__(0.0)
        tiers = OmegaConf.to_container(OmegaConf.create(dict(tiers)), resolve=True) if tiers else {}
        route = [str(t) for t in (route or [])]
        if not route:
            raise AlexpError(f"route lists the tiers an item goes through, cheapest first; got none (tiers: "
                             f"{list(tiers)})")
        unknown = [t for t in route if t not in tiers]
        if unknown or len(set(route)) != len(route):
            raise AlexpError(f"route {route} must name each tier once, among {list(tiers)}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        if escalate not in RULES:
            raise AlexpError(f"escalate must be one of {', '.join(RULES)}, got {escalate!r}")
        if (escalate == "never") != (len(route) == 1):
            raise AlexpError(f"escalate={escalate} with route {route}: " + (
                "a route of several tiers needs a rule to go past the first (confidence, disagreement, uncertain)"
                if escalate == "never" else "a route of one tier has nowhere to escalate to: set escalate=never"))
        if not 0 < share <= 1:
            raise AlexpError(f"share must be in (0, 1], got {share!r}")
        self.route, self.escalate, self.threshold, self.share = route, escalate, float(threshold), float(share)
        self.truth = np.asarray(truth)
        runtime = dict(truth=truth, context=context, pool_features=pool_features, features=features)
        self.tiers: dict[str, Oracle] = {}
        self.weights: dict[str, float] = {}
        for name in route:
            spec = tiers[name]
            if not isinstance(spec, Mapping) or "oracle" not in spec:
                raise AlexpError(f"tiers.{name} must be {{oracle: <an oracle config>, weight: 1}}, got {spec!r}")
            extra = sorted(set(spec) - {"oracle", "weight"})
            if extra:
                raise AlexpError(f"tiers.{name}: unknown keys {extra} (valid: oracle, weight)")
            node = OmegaConf.create(spec["oracle"])
            own = rng if len(route) == 1 else stream(seed, "oracle", zlib.crc32(name.encode()))
            args = accepted(get_class(node["_target_"]), **runtime, rng=own)
            self.tiers[name] = prefixed(f"tiers.{name}.oracle",
                                        lambda node=node, args=args: hydra_instantiate(node, _convert_="all", **args))
            self.weights[name] = float(spec.get("weight", 1.0))
            if self.weights[name] <= 0:
                raise AlexpError(f"tiers.{name}.weight must be > 0, got {self.weights[name]!r}")
        if escalate == "confidence":
            for name in route[:-1]:
                if self.tiers[name].confidence(np.zeros(1, dtype=np.intp)) is None:
                    raise AlexpError(f"escalate=confidence needs each tier before the last to say how sure it is; "
                                     f"tier {name!r} ({type(self.tiers[name]).__name__}) does not (a crowd of >= 2 "
                                     "raters with majority, a model tier, do): use escalate=disagreement or uncertain")
        self.price = {name: self.tiers[name].cost(np.zeros(1, dtype=np.intp)) for name in route}
        self.cost_per_label = self.price[route[0]]  # every item costs at least the first tier's price
        self.interactive = any(getattr(t, "interactive", False) for t in self.tiers.values())
        self.bought: dict[str, dict[int, int]] = {name: {} for name in route}  # tier -> {row: its answer}
        self.stage: dict[int, int] = {}  # row -> index in route of the tier it waits for or ended at
        self.final: dict[int, int] = {}  # row -> index in route of the tier whose label is its label
        self.money: float | None = None  # what the request may still spend (budget.max_cost), None: no limit
        self._want = np.empty(0, dtype=np.intp)
        # (rows, P(positive), predicted class, decision threshold) of the current model for the request
        self._model: tuple[NDArray, NDArray, NDArray, float] | None = None
        self._journal: Path | None = None

    # --- what the loop tells -------------------------------------------------------------------------------

    def advise(self, rows: NDArray[np.intp], proba: NDArray | None, predicted: NDArray | None,
               threshold: float = 0.5) -> None:
        """The current model's P(positive) and predicted class for the rows about to be requested (None before
        there is a model)."""
        self._model = None if proba is None else (np.asarray(rows), np.asarray(proba), np.asarray(predicted),
                                                  float(threshold))

    def allow(self, money: float | None) -> None:
        """The money not yet spent on accepted labels (budget.max_cost less the cost so far); None: no limit."""
        self.money = money

    def keep_journal(self, path) -> None:
        self._journal = Path(path)
        if self._journal.is_file():
            self._replay(self._journal)
        for name, tier in self.tiers.items():
            tier.keep_journal(Path(path).with_suffix(f".{name}.jsonl"))

    def resume(self, labeled: NDArray[np.intp], labels: NDArray[np.int64] | None = None) -> None:
        for tier in self.tiers.values():
            tier.resume(labeled, labels)

    def tell(self, round_: int, rounds: int | None, labeled: int) -> None:
        for tier in self.tiers.values():
            tier.tell(round_, rounds, labeled)

    # --- asking ---------------------------------------------------------------------------------------------

    def request(self, ids: NDArray[np.intp]) -> None:
        self._want = np.asarray(ids, dtype=np.intp)
        for r in self._want.tolist():
            self.stage.setdefault(r, 0)

    def collect(self) -> dict[int, int] | None:
        """Walk the route: ask each tier for the items waiting at it that it has not answered, then decide for
        the answered ones whether they stop there or go on. Returns {row: label} for the items whose route ended
        (None while a person has answered none of them)."""
        waiting = False
        for k, name in enumerate(self.route):
            rows = [r for r in self._want.tolist() if self.stage[r] == k and r not in self.final]
            ask = np.array([r for r in rows if r not in self.bought[name]], dtype=np.intp)
            if ask.size:
                tier = self.tiers[name]
                tier.request(ask)
                got = tier.collect() or {}
                new = {int(r): int(v) for r, v in got.items() if int(r) not in self.bought[name]}
                self._write({"tier": name, "answers": new})
                self.bought[name].update(new)
                faults.crash_point("tier_bought")
                if len(new) < ask.size:
                    waiting = True
            answered = np.array([r for r in rows if r in self.bought[name]], dtype=np.intp)
            if answered.size:
                go = self._decide(k, answered)
                self._write({"stage": k, "escalated": answered[go].tolist(), "kept": answered[~go].tolist()})
                for r in answered[go].tolist():
                    self.stage[r] = k + 1
                for r in answered[~go].tolist():
                    self.final[r] = k
        out = {r: self.bought[self.route[self.final[r]]][r] for r in self._want.tolist() if r in self.final}
        return out if out or not waiting else None

    def _decide(self, k: int, rows: NDArray[np.intp]) -> NDArray[np.bool_]:
        """Which of these rows (answered by tier k) go on to tier k + 1, within the money left."""
        name = self.route[k]
        if k == len(self.route) - 1:
            return np.zeros(len(rows), dtype=bool)
        answers = np.array([self.bought[name][r] for r in rows.tolist()])
        if self.escalate == "confidence":
            need = 1 - self.tiers[name].confidence(rows)  # how unsure the tier is
            want = need > 1 - self.threshold
        else:
            if self._model is None:
                return np.zeros(len(rows), dtype=bool)  # no model yet: nothing to disagree with
            at, proba, predicted, threshold = self._model
            where = {r: i for i, r in enumerate(at.tolist())}
            i = np.array([where[r] for r in rows.tolist()])
            p = proba[i]
            if self.escalate == "disagreement":
                need = np.where(answers == 1, 1 - p, p)  # the model's belief against the tier's answer
                want = predicted[i] != answers
            else:  # uncertain: the share of the request nearest the model's decision threshold
                need = -np.abs(p - threshold)
                reached = np.array([r for r in self._want.tolist() if self.stage[r] >= k], dtype=np.intp)
                near = np.abs(proba[np.array([where[r] for r in reached.tolist()])] - threshold)
                chosen = set(reached[np.argsort(near, kind="stable")][:math.ceil(self.share * len(reached))].tolist())
                want = np.array([r in chosen for r in rows.tolist()])
        go = np.zeros(len(rows), dtype=bool)
        left = math.inf if self.money is None else self.money - self._committed()
        price = self.price[self.route[k + 1]]
        for j in np.argsort(-need, kind="stable"):  # most needed first, while the money lasts
            if want[j] and left >= price - 1e-9:
                go[j], left = True, left - price
        return go

    def _committed(self) -> float:
        """The money the items of the request have bought or are bound to buy: every tier up to their stage
        (at least the first tier's price each)."""
        prices = [self.price[name] for name in self.route]
        return float(sum(sum(prices[:self.stage[r] + 1]) for r in self._want.tolist()))

    # --- what the loop reads --------------------------------------------------------------------------------

    def cost(self, ids: NDArray[np.intp]) -> float:
        """What these items' labels cost: each tier they were asked of, at its price."""
        ids = np.asarray(ids, dtype=np.intp)
        total = 0.0
        for name in self.route:
            rows = np.array([r for r in ids.tolist() if r in self.bought[name]], dtype=np.intp)
            if rows.size:
                total += self.tiers[name].cost(rows)
        return total

    def label_tiers(self, rows: NDArray[np.intp]) -> NDArray:
        """The name of the tier whose label each row holds ("" for a row without one)."""
        return np.array([self.route[self.final[r]] if r in self.final else "" for r in np.asarray(rows).tolist()],
                        dtype=object)

    def sample_weight(self, rows: NDArray[np.intp]) -> NDArray[np.float64] | None:
        """Training weights by the tier each label came from (None when every tier weighs 1)."""
        if all(w == 1.0 for w in self.weights.values()):
            return None
        return np.array([self.weights[t] for t in self.label_tiers(rows)], dtype=np.float64)

    def metrics(self, rows: NDArray[np.intp]) -> dict[str, float]:
        """Per tier, over the labeled rows: `tier_<name>_labels` (labels bought from it), `tier_<name>_cost`,
        `tier_<name>_kappa` (its answers against the truth it is scored against; NaN while undefined), and
        `escalated_share` (labeled items that went past the first tier)."""
        rows = np.asarray(rows, dtype=np.intp)
        out: dict[str, float] = {}
        for name in self.route:
            got = np.array([r for r in rows.tolist() if r in self.bought[name]], dtype=np.intp)
            out[f"tier_{name}_labels"] = float(len(got))
            out[f"tier_{name}_cost"] = float(self.tiers[name].cost(got)) if len(got) else 0.0
            reference = self.tiers[name].scored_against(self.truth)
            scored = got[reference[got] >= 0] if len(got) else got
            answers = np.array([self.bought[name][r] for r in scored.tolist()], dtype=np.int64)
            out[f"tier_{name}_kappa"] = agreement(reference[scored], answers) if len(scored) else math.nan
            for key, value in self.tiers[name].metrics(got).items() if len(got) else ():
                out[f"tier_{name}_{key}"] = value
                if len(self.route) == 1:  # a route of one tier logs all its oracle's own run logs
                    out[key] = value
        if len(self.route) > 1:
            out["escalated_share"] = float(np.mean([self.stage.get(r, 0) > 0 for r in rows.tolist()])) \
                if len(rows) else math.nan
        return out

    def scored_against(self, truth: NDArray[np.int64]) -> NDArray[np.int64]:
        """Each labeled item is scored against the truth of the tier its label came from (a tier of real votes
        is scored against the votes it did not draw)."""
        reference = np.asarray(truth).copy()
        for k, name in enumerate(self.route):
            own = self.tiers[name].scored_against(truth)
            if own is not truth:
                rows = [r for r, at in self.final.items() if at == k]
                reference[rows] = own[rows]
        return reference

    def provenance(self, rows: NDArray[np.intp]) -> dict[str, NDArray]:
        """Columns for labeled.parquet: the tier each label came from, what the item cost, and each tier's answer
        (-1 where it was not asked)."""
        rows = np.asarray(rows, dtype=np.intp)
        cols: dict[str, NDArray] = {"tier": self.label_tiers(rows).astype(str),
                                    "price": np.array([self.cost(np.array([r])) for r in rows.tolist()])}
        for name in self.route:
            cols[f"label_{name}"] = np.array([self.bought[name].get(r, -1) for r in rows.tolist()], dtype=np.int64)
        return cols

    def where(self) -> str:
        """Where the answers still missing are expected: the tiers that have items waiting (all, if none)."""
        waiting = [name for k, name in enumerate(self.route)
                   if any(self.stage.get(r) == k and r not in self.final and r not in self.bought[name]
                          for r in self._want.tolist())]
        return "; ".join(f"tier {name}: {self.tiers[name].where()}" for name in waiting or self.route)

    def commit(self) -> None:
        for tier in self.tiers.values():
            tier.commit()

    def finish(self) -> None:
        for tier in self.tiers.values():
            tier.finish()

    # --- the journal ----------------------------------------------------------------------------------------

    def _write(self, entry: dict) -> None:
        if self._journal is None or not any(entry.get(k) for k in ("answers", "escalated", "kept")):
            return
        with open(self._journal, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _replay(self, path: Path) -> None:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break  # a line cut short by a kill: never acted on
                raise
            if "answers" in entry:
                self.bought[entry["tier"]].update({int(r): int(v) for r, v in entry["answers"].items()})
            else:
                k = int(entry["stage"])
                for r in entry["escalated"]:
                    self.stage[int(r)] = k + 1
                for r in entry["kept"]:
                    self.stage[int(r)], self.final[int(r)] = k, k
