"""The loop: label counts, determinism, never re-selecting, pool exhaustion, and resuming after a crash."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score

from alexp.acquisition import Entropy, Random
from alexp.budget import Budget
from alexp.loop import Loop, LoopState
from alexp.seeds import stream
from alexp.oracles import Noisy

from conftest import CONF


def make_loop(pool, acquisition=None, budget=None, seed=0, model=None, **kw):
    budget = budget or Budget(initial=10, batch_size=10, rounds=5)
    oracle = Noisy(pool.y, stream(seed, "oracle"), flip_rate=0.05)
    return Loop(pool.X, pool.X_test, pool.y_test, model or LogisticRegression(max_iter=500),
                acquisition or Entropy(), oracle, budget, seed, truth=pool.y, progress=False, **kw)


def test_steps_are_label_counts_and_rounds_label_batches(pool):
    logged = []
    state = make_loop(pool, log_metrics=lambda m, step: logged.append((step, m))).run()
    assert [s for s, m in logged if "kappa" in m] == [10, 20, 30, 40, 50, 60]
    # each acquired batch's distance from the decision threshold, at the label count once it is in
    picks = [(s, m) for s, m in logged if "pick_distance" in m]
    assert [s for s, _ in picks] == [20, 30, 40, 50, 60] and all(0 <= m["pick_distance"] <= 0.5 for _, m in picks)
    assert state.finished and state.n_labeled == 60
    np.testing.assert_array_equal(np.bincount(state.labeled_in[state.labeled_in >= 0]), [10] * 6)
    assert [h["n_labels"] for h in state.history] == [10, 20, 30, 40, 50, 60]


def test_same_seed_gives_identical_selections_and_metrics(pool):
    a, b = make_loop(pool, seed=3).run(), make_loop(pool, seed=3).run()
    np.testing.assert_array_equal(a.selected(), b.selected())
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.history == b.history
    c = make_loop(pool, seed=4).run()
    assert not np.array_equal(a.selected(), c.selected())


def test_initial_set_depends_on_the_seed_only(pool):
    a = make_loop(pool, acquisition=Entropy(), seed=5).run()
    b = make_loop(pool, acquisition=Random(), seed=5).run()
    np.testing.assert_array_equal(np.flatnonzero(a.labeled_in == 0), np.flatnonzero(b.labeled_in == 0))


def test_labels_are_the_oracle_answers_and_never_reselected(pool):
    state = make_loop(pool, budget=Budget(initial=50, batch_size=50, rounds=8)).run()
    rows = state.selected()
    assert len(rows) == len(np.unique(rows)) == 450
    expected = Noisy(pool.y, stream(0, "oracle"), flip_rate=0.05).answers
    np.testing.assert_array_equal(state.labels[rows], expected[rows])
    assert (state.labels[state.labeled_in < 0] == -1).all()


def test_stops_cleanly_when_the_pool_runs_out(pool):
    state = make_loop(pool, acquisition=Random(), budget=Budget(initial=100, batch_size=300, rounds=10)).run()
    assert state.finished and state.n_labeled == len(pool.y)
    assert [h["n_labels"] for h in state.history] == [100, 400, 600]


def test_max_labels_truncates_the_last_batch(pool):
    state = make_loop(pool, budget=Budget(initial=10, batch_size=20, rounds=None, max_labels=45)).run()
    assert [h["n_labels"] for h in state.history] == [10, 30, 45]


def test_cold_start_with_one_class_falls_back_to_random_then_learns(pool):
    budget = Budget(initial=5, batch_size=40, rounds=3, stratified=False)
    loop = make_loop(pool, budget=budget)
    negatives_only = np.flatnonzero(loop.oracle.answers == 0)[:5]  # the oracle labels all five negative
    state = LoopState.fresh(len(pool.y))
    state.pending = negatives_only  # a hand-picked, single-class initial set
    loop.oracle.request(negatives_only)
    state = loop.run(state)
    assert state.history[0]["kappa"] == 0.0  # a constant predictor
    assert state.finished and state.history[-1]["n_labels"] == 125


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at_step", [10, 30, 60])
def test_resume_after_a_crash_equals_an_uninterrupted_run(pool, tmp_path, crash_at_step):
    reference = make_loop(pool).run()
    checkpoint = tmp_path / "state.npz"

    def log_then_crash(metrics, step):
        if step == crash_at_step:
            raise Crash

    with pytest.raises(Crash):
        make_loop(pool, log_metrics=log_then_crash, checkpoint=checkpoint).run()
    saved = LoopState.load(checkpoint)
    assert not saved.finished
    resumed = make_loop(pool, checkpoint=checkpoint).run(saved)
    np.testing.assert_array_equal(resumed.selected(), reference.selected())
    np.testing.assert_array_equal(resumed.labeled_in, reference.labeled_in)
    assert resumed.history == reference.history


def test_state_round_trips_through_its_file(tmp_path):
    state = LoopState.fresh(5)
    state.labeled_in[[1, 3]] = [0, 1]
    state.labels[[1, 3]] = [1, 0]
    state.round, state.evaluated, state.run_id = 1, 0, "abc"
    state.pending = np.array([4])
    state.history = [{"kappa": 0.5}]
    state.save(tmp_path / "s.npz")
    back = LoopState.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.labeled_in, state.labeled_in)
    np.testing.assert_array_equal(back.labels, state.labels)
    np.testing.assert_array_equal(back.pending, [4])
    assert (back.round, back.evaluated, back.run_id, back.history) == (1, 0, "abc", [{"kappa": 0.5}])
    assert list(tmp_path.iterdir()) == [tmp_path / "s.npz"]  # no temp file left behind


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "acquisition").glob("*.yaml")))
def test_every_configured_strategy_runs_the_loop(pool, name):
    from test_acquisition import model_for, strategy_from_config

    budget, strategy = Budget(initial=20, batch_size=15, rounds=3), strategy_from_config(name)
    state = make_loop(pool, acquisition=strategy, budget=budget, model=model_for(strategy)).run()
    assert [h["n_labels"] for h in state.history] == [20, 35, 50, 65]
    assert len(np.unique(state.selected())) == 65


def test_each_round_logs_cost_and_the_oracles_realized_kappa(pool):
    from alexp.oracles import ExpertPanel

    loop = make_loop(pool)
    loop.oracle = ExpertPanel(pool.y, stream(0, "oracle"), kappas=[0.9, 0.7], cost_per_label=2.0)
    state = loop.run()
    assert [h["cost"] for h in state.history] == [40.0, 80.0, 120.0, 160.0, 200.0, 240.0]  # 2 experts x 2.0
    rows = state.selected()
    last = state.history[-1]
    assert last["oracle_kappa"] == pytest.approx(cohen_kappa_score(pool.y[rows], state.labels[rows]))
    assert 0 < last["panel_kappa"] < 1


def test_a_money_budget_stops_the_loop(pool):
    loop = make_loop(pool, budget=Budget(initial=10, batch_size=10, rounds=None, max_cost=35.0))
    loop.oracle.cost_per_label = 1.5
    state = loop.run()
    assert [h["n_labels"] for h in state.history] == [10, 20, 23]  # 15 + 15 + 3 x 1.5 = 34.5 <= 35
    assert state.cost == pytest.approx(34.5)


def test_a_curated_eval_split_is_held_out_of_training_and_scored_every_round(pool):
    from alexp.acquisition import VoteEntropy

    budget = Budget(initial=40, batch_size=20, rounds=3, eval_share=0.25)
    fits = []

    class Recording(LogisticRegression):
        def fit(self, X, y):
            fits.append(len(y))
            return super().fit(X, y)

    loop = make_loop(pool, acquisition=VoteEntropy(n_members=2), budget=budget, model=Recording(max_iter=500))
    state = loop.run()
    labeled = np.flatnonzero(state.labeled_in >= 0)
    held = labeled[loop.held_out[labeled]]
    assert 0 < len(held) < len(labeled)
    assert [h["curated_n"] for h in state.history][-1] == len(held)
    trained = len(labeled) - len(held)
    assert max(fits) == trained  # neither the model nor the committee ever saw a held-out label
    from alexp import models
    from alexp.seeds import stream_int
    from alexp.metrics import agreement

    train = np.setdiff1d(labeled, held)
    fitted = models.fit(LogisticRegression(max_iter=500), pool.X[train], state.labels[train], stream_int(0, "model"))
    assert state.history[-1]["curated_kappa"] == agreement(state.labels[held], models.predict(fitted, pool.X[held], 2))


def test_oracle_kappa_scores_real_votes_against_the_votes_not_drawn(pool):
    """With answers drawn from the data's own votes, oracle_kappa uses the leave-rater-out truth and leaves out
    items that have none; rater_pair_kappa reports the real raters' agreement beside it."""
    from alexp.oracles import RaterVotes, rater_pair_kappa

    rng = np.random.default_rng(0)
    count = rng.choice([3, 4, 5], len(pool.y))
    positives = np.where(pool.y == 1, count - rng.binomial(1, 0.3, len(pool.y)), rng.binomial(1, 0.2, len(pool.y)))
    loop = make_loop(pool)
    loop.oracle = RaterVotes(stream(0, "oracle"), {"n_hate_speech": positives, "annotator_count": count})
    state = loop.run()
    rows = state.selected()
    truth = loop.oracle.held_out_truth[rows]
    last = state.history[-1]
    assert (truth == -1).any() and last["oracle_kappa"] == pytest.approx(
        cohen_kappa_score(truth[truth >= 0], state.labels[rows][truth >= 0]))
    assert last["oracle_kappa"] != pytest.approx(cohen_kappa_score(pool.y[rows], state.labels[rows]))
    assert last["rater_pair_kappa"] == pytest.approx(rater_pair_kappa(positives[rows], count[rows]))


def test_oracle_kappa_is_undefined_while_no_labeled_item_has_a_truth_of_its_own(pool):
    """Three votes drawn from items with three votes leave no vote to score them against: NaN, not a crash."""
    from alexp.oracles import RaterVotes

    count = np.full(len(pool.y), 3)
    loop = make_loop(pool, budget=Budget(initial=10, batch_size=10, rounds=1))
    loop.oracle = RaterVotes(stream(0, "oracle"), {"n_hate_speech": 3 * pool.y, "annotator_count": count},
                             n_raters=3)
    state = loop.run()
    assert state.finished and all(np.isnan(h["oracle_kappa"]) for h in state.history)
