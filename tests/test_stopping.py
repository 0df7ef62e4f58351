"""Stopping rules: each fires at the round worked out by hand, and none reads a label that was not bought."""

import math
import re

import numpy as np
import pytest

from alexp import AlexpError
from alexp.budget import Budget
from alexp.stopping import (ClassificationChange, KappaAverage, LabelBudget, MaxUncertainty, OverallUncertainty,
                            StabilizingPredictions, Stopping, normalized_entropy, prediction_kappa)

from test_loop import make_loop

A = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
B = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0])  # A with two rows swapped: 8 of 10 agree, 5 positives each
C = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])  # A with one more positive


def first_firing(rule, predictions, probas=None, unlabeled=None, labels=None):
    """The round (0-based, one model per round) at which `rule` first fires, and its statistics per round."""
    n = len(predictions)
    probas = probas or [np.tile([0.5, 0.5], (len(A), 1))] * n
    unlabeled = unlabeled or [np.ones(len(A), dtype=bool)] * n
    labels = labels or [10 * (r + 1) for r in range(n)]
    values, fired = [], None
    for r in range(n):
        fires, value = rule.check(predictions[: r + 1], probas[r], unlabeled[r], labels[r])
        values.append(value)
        if fires and fired is None:
            fired = r
    return fired, values


def test_prediction_kappa_by_hand():
    # A vs C: agree on 9 of 10; A has 5 positives, C 6: chance agreement 0.5*0.6 + 0.5*0.4 = 0.5 -> (0.9-0.5)/0.5
    assert prediction_kappa(A, C) == pytest.approx(0.8)
    assert prediction_kappa(A, B) == pytest.approx(0.6)  # 0.8 agreement, chance 0.5
    assert prediction_kappa(np.zeros(5), np.zeros(5)) == 1.0  # identical, one class: 0/0 in the formula


def test_stabilizing_predictions_fires_when_three_successive_kappas_average_099():
    # kappas of successive pairs: A-C 0.8, then C-C 1, 1, 1: mean of the last three is 0.933 at round 3, 1 at 4
    fired, values = first_firing(StabilizingPredictions(0.99, 3), [A, C, C, C, C])
    assert fired == 4
    assert all(math.isnan(v) for v in values[:3]) and values[3] == pytest.approx((0.8 + 1 + 1) / 3)
    # a steady disagreement (kappa 0.6 every time) never stabilises
    assert first_firing(StabilizingPredictions(0.99, 3), [A, B, A, B, A, B])[0] is None


def test_kappa_average_fires_when_the_kappas_stop_changing_at_any_level():
    # A B A B ...: every successive kappa is 0.6, so the changes are 0 from the first full window (round 3)
    fired, values = first_firing(KappaAverage(0.99, 3), [A, B, A, B, A])
    assert fired == 3 and values[3] == 0.0
    # kappas 0.8, 1, 1, 1: changes |0.2|, 0 -> mean 0.1 at round 3 (no); 0, 0 at round 4 (fires)
    fired, values = first_firing(KappaAverage(0.99, 3), [A, C, C, C, C])
    assert fired == 4 and values[3] == pytest.approx(0.1)


def test_overall_uncertainty_fires_when_the_mean_entropy_of_the_unlabeled_rows_drops_below_005():
    # normalized entropy of (0.9, 0.1) is 0.469, of (0.99, 0.01) 0.0808, of (0.999, 0.001) 0.0114
    assert normalized_entropy(np.array([[0.99, 0.01]]))[0] == pytest.approx(0.0808, abs=1e-4)
    probas = [np.tile([p, 1 - p], (10, 1)) for p in (0.9, 0.99, 0.999)]
    fired, values = first_firing(OverallUncertainty(0.05), [A] * 3, probas)
    assert fired == 2 and values[2] == pytest.approx(0.0114, abs=1e-4)
    # a labeled row's uncertainty does not count
    probas[2][0] = [0.5, 0.5]
    unlabeled = [np.ones(10, dtype=bool)] * 2 + [np.arange(10) > 0]
    assert first_firing(OverallUncertainty(0.05), [A] * 3, probas, unlabeled)[0] == 2


def test_max_uncertainty_fires_when_even_the_most_uncertain_row_is_sure():
    # the worst row at 0.95 (entropy 0.286), then at 0.98 (0.141 < 0.2)
    probas = [np.tile([0.999, 0.001], (10, 1)) for _ in range(2)]
    probas[0][3], probas[1][3] = [0.95, 0.05], [0.98, 0.02]
    fired, values = first_firing(MaxUncertainty(0.2), [A, A], probas)
    assert fired == 1 and values[0] == pytest.approx(0.2864, abs=1e-4) and values[1] == pytest.approx(0.1414, abs=1e-4)


def test_classification_change_fires_when_no_unlabeled_prediction_changes():
    fired, values = first_firing(ClassificationChange(0.0), [A, B, B])
    assert fired == 2 and values[1] == pytest.approx(0.2) and values[2] == 0.0
    # the rows that changed (4 and 5) are labeled by round 1: nothing unlabeled changed
    unlabeled = [np.ones(10, dtype=bool), ~np.isin(np.arange(10), [4, 5])]
    assert first_firing(ClassificationChange(0.0), [A, B], unlabeled=unlabeled)[0] == 1
    assert first_firing(ClassificationChange(0.2), [A, B])[0] == 1  # a fifth may change


def test_label_budget_fires_at_its_label_count():
    assert first_firing(LabelBudget(200), [A] * 5, labels=[50, 100, 150, 200, 250])[0] == 3


def test_a_fired_rule_stays_fired_and_bad_settings_are_refused():
    stopping = Stopping({"budget": LabelBudget(20), "sp": StabilizingPredictions()})
    proba, unlabeled = np.tile([0.5, 0.5], (10, 1)), np.ones(10, dtype=bool)
    first = stopping.check([A], proba, unlabeled, 20, {})
    assert first["stop_budget"] == 1.0 and first["stop_sp"] == 0.0 and stopping.first_fired(first) == "budget"
    assert stopping.check([A], proba, unlabeled, 10, {"budget": True})["stop_budget"] == 1.0
    for bad in (lambda: StabilizingPredictions(threshold=1.5), lambda: KappaAverage(window=1),
                lambda: LabelBudget(0), lambda: Stopping({}), lambda: Stopping({"x": object()})):
        with pytest.raises(AlexpError):
            bad()


def all_rules(enforce=False):
    return Stopping({"stabilizing_predictions": StabilizingPredictions(0.99, 3), "kappa_average": KappaAverage(),
                     "overall_uncertainty": OverallUncertainty(0.2), "max_uncertainty": MaxUncertainty(0.5),
                     "classification_change": ClassificationChange(0.01), "label_budget": LabelBudget(60)},
                    stop_set_size=200, enforce=enforce)


def stop_signals(history):
    """Each round's stopping flags and statistics (NaN as None, so that equal histories compare equal)."""
    return [{k: None if math.isnan(v) else v for k, v in h.items() if k.startswith("stop_")} for h in history]


def test_rules_never_read_labels_that_were_not_bought(pool):
    """Scramble the truth of every unlabeled pool row and the whole gold test set before each round's rules
    are checked: the stopping decisions and statistics must not move (the kappa against the test set does)."""
    budget = Budget(initial=10, batch_size=10, rounds=9)
    plain = make_loop(pool, budget=budget, stopping=all_rules()).run()

    scrambled = make_loop(pool, budget=budget, stopping=all_rules())
    scrambled.truth, scrambled.y_test = scrambled.truth.copy(), scrambled.y_test.copy()
    rng = np.random.default_rng(7)
    signals = scrambled._stopping_signals

    def scramble_then_check(state, fitted):
        unlabeled = np.flatnonzero(state.labeled_in < 0)
        scrambled.truth[unlabeled] = rng.integers(0, 2, len(unlabeled))
        scrambled.y_test[:] = rng.integers(0, 2, len(scrambled.y_test))
        return signals(state, fitted)

    scrambled._stopping_signals = scramble_then_check
    other = scrambled.run()
    np.testing.assert_array_equal(plain.selected(), other.selected())
    assert stop_signals(plain.history) == stop_signals(other.history)
    assert [h["kappa"] for h in plain.history] != [h["kappa"] for h in other.history]  # the scramble took effect
    fired = {k for h in stop_signals(plain.history) for k, v in h.items() if v == 1.0 and not k.endswith("_value")}
    assert {"stop_label_budget", "stop_overall_uncertainty"} <= fired  # decisions were made, not all "no"


def test_enforced_rules_end_the_run_and_a_resumed_run_decides_the_same(pool, tmp_path):
    budget = Budget(initial=10, batch_size=10, rounds=9)
    logged = make_loop(pool, budget=budget, stopping=all_rules()).run()
    first = next(i for i, h in enumerate(logged.history) if any(h[f"stop_{n}"] for n in all_rules().rules))
    ended = make_loop(pool, budget=budget, stopping=all_rules(enforce=True)).run()
    assert ended.finished and ended.stopped_by is not None and len(ended.history) == first + 1
    assert stop_signals(ended.history) == stop_signals(logged.history[: first + 1])

    # killed after round 3 (its checkpoint), then resumed: the same signals as the uninterrupted run
    checkpoint = tmp_path / "state.npz"
    loop = make_loop(pool, budget=budget, stopping=all_rules(), checkpoint=checkpoint)
    original_save, saves = loop._save, []

    def save_then_die(state):
        original_save(state)
        saves.append(state.evaluated)
        if state.evaluated == 3:
            raise KeyboardInterrupt

    loop._save = save_then_die
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    from alexp.loop import LoopState

    resumed = make_loop(pool, budget=budget, stopping=all_rules(), checkpoint=checkpoint).run(
        LoopState.load(checkpoint))
    assert stop_signals(resumed.history) == stop_signals(logged.history)


def test_alexp_logs_every_rule_and_enforce_ends_the_run_where_the_first_rule_fired(alexp, tmp_path):
    from conftest import runs

    (tmp_path / "a").mkdir()
    budget = ["budget=small", "stopping=all", "stopping.rules.label_budget.labels=30"]  # something fires by 30
    alexp(*budget, cwd=tmp_path / "a")
    client, _, (run,) = runs(tmp_path / "a")
    names = list(all_rules().rules)
    assert {f"stop_{n}" for n in names} | {f"stop_{n}_value" for n in names} <= set(run.data.metrics)
    assert run.data.params["stopping"] == "all"
    fired = {n: [m.step for m in client.get_metric_history(run.info.run_id, f"stop_{n}") if m.value == 1.0]
             for n in names}
    first = min(min(steps) for steps in fired.values() if steps)
    assert first <= 30 and 30 in fired["label_budget"]
    (tmp_path / "b").mkdir()
    out = alexp(*budget, "stopping.enforce=true", cwd=tmp_path / "b").stdout
    client, _, (run,) = runs(tmp_path / "b")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "kappa")][-1] == first
    rule = re.search(r"stopped by the rule (\w+) at (\d+) labels", out)
    assert rule and first in fired[rule.group(1)] and int(rule.group(2)) == first
