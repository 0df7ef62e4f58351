"""The active-learning loop and its state. No Hydra, no MLflow, no config objects: plain arrays and callables.

State is one integer array `labeled_in` (the round each pool row was labeled in, -1 if not), the oracle's
labels, and two round counters. It is written atomically after each accepted batch and after each evaluated
round, so a run killed at any point continues from its checkpoint and ends exactly as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.dummy import DummyClassifier

from alexp import faults, models
from alexp.lifeline import check as check_stopped
from alexp.lifeline import shielded
from alexp.acquisition import Acquisition, PoolView
from alexp.atomic import atomic_path
from alexp.budget import Budget
from alexp.metrics import agreement, evaluate
from alexp.oracles import Oracle
from alexp.seeds import stream, stream_int

log = logging.getLogger(__name__)

@dataclass
class LoopState:
    labeled_in: NDArray[np.int64]  # round each pool row was labeled in; -1 = unlabeled
    labels: NDArray[np.int64]  # the oracle's label per pool row; -1 = none
    round: int = -1  # last round whose labels were accepted
    evaluated: int = -1  # last round whose model was fitted, evaluated and logged
    pending: NDArray[np.intp] = field(default_factory=lambda: np.empty(0, dtype=np.intp))  # asked, not answered
    history: list[dict[str, float]] = field(default_factory=list)  # metrics per evaluated round
    cost: float = 0.0  # what the accepted labels cost
    run_id: str | None = None  # tracking run this state belongs to
    finished: bool = False
    stopped_by: str | None = None  # the stopping rule that ended the run (stopping.enforce)
    # The stop set's predicted classes by each evaluated round's model (stopping rules only): rounds x rows.
    stop_predictions: NDArray[np.int8] = field(default_factory=lambda: np.empty((0, 0), dtype=np.int8))

    @classmethod
    def fresh(cls, n_pool: int) -> LoopState:
        return cls(np.full(n_pool, -1, dtype=np.int64), np.full(n_pool, -1, dtype=np.int64))

    @property
    def n_labeled(self) -> int:
        return int((self.labeled_in >= 0).sum())

    def selected(self) -> NDArray[np.intp]:
        """Labeled rows in the order they were labeled (by round, then row)."""
        rows = np.flatnonzero(self.labeled_in >= 0)
        return rows[np.argsort(self.labeled_in[rows], kind="stable")]

    def save(self, path: Path) -> None:
        """Write atomically: a temp file in the same folder, then a rename."""
        meta = {"round": self.round, "evaluated": self.evaluated, "history": self.history,
                "run_id": self.run_id, "finished": self.finished, "cost": self.cost, "stopped_by": self.stopped_by}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, labeled_in=self.labeled_in, labels=self.labels, pending=self.pending,
                     stop_predictions=self.stop_predictions, meta=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path: Path) -> LoopState:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            stops = z["stop_predictions"] if "stop_predictions" in z else np.empty((0, 0), dtype=np.int8)
            return cls(z["labeled_in"], z["labels"], meta["round"], meta["evaluated"], z["pending"],
                       meta["history"], meta["cost"], meta["run_id"], meta["finished"], meta.get("stopped_by"),
                       stops)


@dataclass
class Loop:
    """Pool-based batch active learning: label, fit, evaluate, select; repeat until the budget is spent."""

    X: Any  # pool features, n_pool rows
    X_test: Any  # gold test features
    y_test: NDArray[np.int64]  # gold test labels
    model: Any  # unfitted scikit-learn-style classifier; cloned every round
    acquisition: Acquisition
    oracle: Oracle
    budget: Budget
    seed: int
    truth: NDArray[np.int64] | None = None  # the data's pool labels: a stratified start, and oracle_kappa
    n_classes: int = 2
    log_metrics: Callable[[dict[str, float], int], None] = lambda metrics, step: None
    checkpoint: Path | None = None
    progress: bool = True
    scout: Any = None  # a model that needs no labels (zero-shot): logged at 0 labels, picks round 0 if initial=0
    engine: Any = None  # scores a pool on disk on a cluster (alexp.engine): the same picks as this process
    stopping: Any = None  # alexp.stopping.Stopping: rules checked (and logged) each round; enforce ends the run
    curated: tuple[Any, NDArray[np.int64]] | None = None  # (features, labels) of a common curated evaluation set
    _select_seconds: float = field(default=0.0, init=False, repr=False)  # how long the last selection took

    def __post_init__(self):
        # Each pool item is in the curated eval split, if it is ever labeled, with probability budget.eval_share:
        # decided once per run seed, so it does not depend on the round it is labeled in (and survives resumes).
        n, share = self.X.shape[0], self.budget.eval_share
        self.held_out = (stream(self.seed, "eval").random(n) < share) if share else np.zeros(n, dtype=bool)
        self.stop_rows = self.stopping.stop_set(n, stream(self.seed, "stop")) if self.stopping is not None else None
        models.prepare(self.model, self.X, self.X_test)  # a transformer tokenizes the run's texts once
        if getattr(self.acquisition, "reads_truth", False):  # the greedy oracle: an upper bound that cheats
            if self.truth is None:
                raise ValueError(f"{type(self.acquisition).__name__} reads the pool's truth: pass Loop(truth=...)")
            self.acquisition.reveal(self.truth, self.X_test, self.y_test, self.model, stream_int(self.seed, "model"))

    def run(self, state: LoopState | None = None) -> LoopState:
        """Run (or continue) until the budget or pool is spent, or a human oracle has not answered yet."""
        from tqdm.auto import tqdm

        state = state or LoopState.fresh(self.X.shape[0])
        if self.budget.initial == 0 and self.scout is None:
            raise ValueError("budget.initial=0 starts from a scout's predictions: set one (scout=zero_shot)")
        if self.scout is not None and not state.history:
            self._evaluate_scout(state)
        accepted = np.flatnonzero(state.labeled_in >= 0)
        self.oracle.resume(accepted, state.labels[accepted])
        if self.checkpoint is not None:  # a person's answers are journaled beside the state the moment given
            self.oracle.keep_journal(self.checkpoint.with_suffix(".answers.jsonl"))
        fitted = None
        if state.pending.size:  # resumed while waiting: requests are idempotent, so ask again
            if getattr(self.oracle, "reads_model", False) and state.round >= 0:
                fitted = self._fit(state, resumed=True)  # the model that picked the batch (deterministic)
            self._request(state, fitted if state.round >= 0 else self.scout)
        total = None if self.budget.rounds is None else self.budget.rounds + 1
        bar_off = None if self.progress and not getattr(self.oracle, "interactive", False) else True  # None: on a tty
        with tqdm(total=total, initial=state.evaluated + 1, desc="rounds", unit="round", disable=bar_off,
                  leave=False) as bar:
            while True:
                check_stopped()  # a signal whose exception a finalizer swallowed
                if state.pending.size:
                    answers = self.oracle.collect()
                    self._correct(state, self.oracle.corrections())
                    if answers is not None:
                        with shielded():
                            self._accept(state, answers)
                            faults.crash_point("accepted")
                            self.oracle.commit()  # the answers are in the saved state: the oracle may let go of them
                    if state.pending.size and answers == {}:
                        continue  # an answer file with nothing new (read again after a crash): look again
                    if state.pending.size:  # nothing, or only part of the batch, came back
                        if answers:
                            self._request(state, fitted if state.round >= 0 else self.scout, tell=False)  # the rest
                            if getattr(self.oracle, "wait", False):
                                continue  # an oracle that waits takes the rest as it comes
                        return state
                if state.evaluated < state.round:
                    fitted = self._evaluate(state, resumed=fitted is None)
                    bar.set_postfix(labels=state.n_labeled, kappa=f"{state.history[-1]['kappa']:.3f}", refresh=False)
                    bar.update(1)
                    if self.stopping is not None and self.stopping.enforce and not state.finished:
                        rule = self.stopping.first_fired(state.history[-1])
                        if rule is not None:  # a person is labeling: the first rule that fires ends it
                            state.finished, state.stopped_by = True, rule
                            self._save(state)
                            return state
                n = self.budget.next_batch(state.round + 1, state.n_labeled, len(state.labels) - state.n_labeled,
                                           state.cost, self.oracle.cost_per_label)
                if n == 0:
                    state.finished = True
                    self._save(state)
                    return state
                if fitted is None and state.round >= 0:  # resumed: refit the last round's model
                    fitted = self._fit(state, resumed=True)
                started = time.perf_counter()
                state.pending = self._select(state, fitted, n)
                self._select_seconds = time.perf_counter() - started
                if state.round >= 0 or self.budget.initial == 0:
                    self.log_metrics(self._pick_metrics(fitted if state.round >= 0 else self.scout, state.pending),
                                     state.n_labeled + len(state.pending))
                self._save(state)
                self._request(state, fitted if state.round >= 0 else self.scout)

    def _request(self, state: LoopState, model, tell: bool = True) -> None:
        """Ask the oracle for the pending rows. An oracle that routes items by the model (oracle=tiers) is first
        shown the model's view of them (None before there is one) and the money the budget leaves."""
        if tell:
            self.oracle.tell(state.round + 1, self.budget.rounds, state.n_labeled)
        if getattr(self.oracle, "reads_model", False):
            rows = state.pending
            if model is None or not len(rows):
                self.oracle.advise(rows, None, None)
            else:
                proba, predicted = models.proba_and_predict(model, self.X[rows], 2)
                self.oracle.advise(rows, proba[:, 1], predicted, getattr(model, "threshold_", 0.5))
            self.oracle.allow(None if self.budget.max_cost is None else self.budget.max_cost - state.cost)
        self.oracle.request(state.pending)

    def _select(self, state: LoopState, fitted, n: int) -> NDArray[np.intp]:
        r = state.round + 1
        if r == 0 and self.budget.initial > 0:
            ids = self.budget.initial_ids(len(state.labels), stream(self.seed, "initial"), self.truth)
        else:  # an acquisition round; round 0 of a cold start (initial=0) asks the scout
            pool = PoolView(self.X, state.labeled_in, np.where(self.held_out, -1, state.labels), self.n_classes,
                            engine=self.engine)
            model = fitted if r > 0 else self.scout
            ids = np.asarray(self.acquisition(model, pool, n, stream(self.seed, "acquisition", r)), dtype=np.intp)
            if len(ids) != n or len(np.unique(ids)) != n or (state.labeled_in[ids] >= 0).any():
                raise RuntimeError(f"{type(self.acquisition).__name__} returned an invalid batch: "
                                   f"{len(ids)} ids ({len(np.unique(ids))} unique) for n={n}")
        return ids.astype(np.intp)

    def _pick_metrics(self, model, ids: NDArray[np.intp]) -> dict[str, float]:
        """What the acquisition did this round (tracker only, at the label count once the batch is in):
        `pick_distance`, the median distance of the picks' positive-class probability from the model's decision
        threshold (its `threshold_`, else 0.5; binary models), and the strategy's own `stats`, if it keeps any
        (boundary_pairs: overlap share, contact ratio, margin fallback)."""
        out = {name: float(v) for name, v in getattr(self.acquisition, "stats", {}).items()}
        if self.n_classes == 2 and len(ids):
            p = models.predict_proba(model, self.X[np.sort(ids)], 2)[:, 1]
            out["pick_distance"] = float(np.median(np.abs(p - getattr(model, "threshold_", 0.5))))
        return out

    def _accept(self, state: LoopState, answers: dict[int, int]) -> None:
        """Record answers (all of the request, or part of it: the rest stays pending) and save at once."""
        if not answers:
            return
        ids = np.fromiter(answers.keys(), dtype=np.intp, count=len(answers))
        if not np.isin(ids, state.pending).all():
            raise RuntimeError(f"oracle answered ids that were not requested: {ids[~np.isin(ids, state.pending)][:5]}")
        state.cost += self.oracle.cost(ids)
        state.labeled_in[ids] = state.round + 1
        state.labels[ids] = np.fromiter(answers.values(), dtype=np.int64, count=len(answers))
        state.pending = state.pending[~np.isin(state.pending, ids)]
        if not state.pending.size:
            state.round += 1
        self._save(state)

    def _correct(self, state: LoopState, fixes: dict[int, int]) -> None:
        """Apply a human oracle's corrections of labels it gave before: the next fit uses them; rounds already
        scored keep their scores (their history is what happened)."""
        rows = [r for r, k in fixes.items() if state.labeled_in[r] >= 0 and state.labels[r] != k]
        if rows:
            state.labels[rows] = [fixes[r] for r in rows]
            self._save(state)

    def _fit(self, state: LoopState, resumed: bool = False):
        """The model fitted on the labels so far; while they hold one class, the scout if there is one.

        A warm-started model continues from its previous fit, so a resumed run first replays the fits of the
        rounds before (deterministic, so it ends where the uninterrupted run did)."""
        train = (state.labeled_in >= 0) & ~self.held_out
        if resumed and getattr(self.model, "warm_start", False):
            for r in range(state.round):
                rows = np.flatnonzero(train & (state.labeled_in <= r))
                models.fit(self.model, self.X[rows], state.labels[rows], stream_int(self.seed, "model"),
                           sample_weight=self._weights(rows))
        rows = np.flatnonzero(train)
        fitted = models.fit(self.model, self.X[rows], state.labels[rows], stream_int(self.seed, "model"),
                            unlabeled=self._unlabeled(state), sample_weight=self._weights(rows))
        return self.scout if self.scout is not None and isinstance(fitted, DummyClassifier) else fitted

    def _weights(self, rows: NDArray[np.intp]):
        """Training weights of labeled rows, when the oracle weights its sources (oracle=tiers); else None."""
        weigh = getattr(self.oracle, "sample_weight", None)
        return weigh(rows) if weigh is not None else None

    def _unlabeled(self, state: LoopState):
        """A semi-supervised model's unlabeled rows (`max_unlabeled` of them): a sample of the pool rows not
        labeled yet, drawn from the round's own seed stream (so a resumed run draws the same); None otherwise."""
        size = getattr(self.model, "max_unlabeled", None) if getattr(self.model, "uses_unlabeled", False) else None
        if not size:
            return None
        rows = np.flatnonzero(state.labeled_in < 0)
        if len(rows) > size:
            rows = np.sort(stream(self.seed, "unlabeled", state.round).choice(rows, size, replace=False))
        return self.X[rows]

    def _evaluate_scout(self, state: LoopState) -> None:
        """The scout's test metrics at 0 labels: where the curve starts before any label is bought."""
        metrics = evaluate(self.y_test, *models.proba_and_predict(self.scout, self.X_test, self.n_classes))
        metrics.update(n_labels=0.0, positives_labeled=0.0, cost=0.0)
        self.log_metrics(metrics, 0)
        state.history.append(metrics)
        self._save(state)

    def _evaluate(self, state: LoopState, resumed: bool = False):
        started = time.perf_counter()
        fitted = self._fit(state, resumed)
        fitted_at = time.perf_counter()
        labeled = np.flatnonzero(state.labeled_in >= 0)
        metrics = evaluate(self.y_test, *models.proba_and_predict(fitted, self.X_test, self.n_classes))
        # Wall times go to the tracker only: the history stays identical between runs of one config and seed.
        seconds = {"fit_seconds": fitted_at - started, "test_seconds": time.perf_counter() - fitted_at,
                   "select_seconds": self._select_seconds}
        metrics["n_labels"] = float(len(labeled))
        metrics["positives_labeled"] = float((state.labels[labeled] == 1).sum())
        metrics["cost"] = state.cost
        if self.truth is not None:  # how good the oracle's labels are, against the data's own labels
            reference = self.oracle.scored_against(self.truth)
            scored = labeled[reference[labeled] >= 0]  # items without a truth of their own leave the score
            metrics["oracle_kappa"] = agreement(reference[scored], state.labels[scored]) if len(scored) else \
                float("nan")  # undefined: no labeled item has a truth to be scored against yet
        metrics.update(self.oracle.metrics(labeled))
        if self.stopping is not None:
            metrics.update(self._stopping_signals(state, fitted))
        if self.budget.eval_share:  # the seed's second yardstick: agreement with the held-out expert labels
            curated = labeled[self.held_out[labeled]]
            metrics["curated_n"] = float(len(curated))
            metrics["curated_kappa"] = agreement(state.labels[curated], models.predict(
                fitted, self.X[curated], self.n_classes)) if len(curated) else float("nan")
        if self.curated is not None:  # the same expert-labelled items for every arm of a seed (curated_set)
            X_cur, y_cur = self.curated
            metrics["common_curated_kappa"] = agreement(y_cur, models.predict(fitted, X_cur, self.n_classes))
        self.log_metrics({**metrics, **seconds}, state.n_labeled)
        state.history.append(metrics)
        state.evaluated = state.round
        self._save(state)
        return fitted

    def _stopping_signals(self, state: LoopState, fitted) -> dict[str, float]:
        """Every stopping rule's flag and statistic for this round, from the model's predictions on the stop set
        and the labels bought: nothing here reads the pool's truth, the oracle or the test set."""
        proba, predicted = models.proba_and_predict(fitted, self.X[self.stop_rows], self.n_classes)
        if state.stop_predictions.size == 0:
            state.stop_predictions = np.empty((0, len(self.stop_rows)), dtype=np.int8)
        state.stop_predictions = np.vstack([state.stop_predictions, predicted.astype(np.int8)[None]])
        before = state.history[-1] if state.history else {}
        fired_before = {name: before.get(f"stop_{name}") == 1.0 for name in self.stopping.rules}
        return self.stopping.check(list(state.stop_predictions), proba, state.labeled_in[self.stop_rows] < 0,
                                   state.n_labeled, fired_before)

    def _save(self, state: LoopState) -> None:
        if self.checkpoint is not None:
            with shielded():
                state.save(self.checkpoint)
