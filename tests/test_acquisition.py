"""Acquisition: the contract every strategy meets, and reference answers for the scoring functions."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from alexp.acquisition import (Entropy, LeastConfidence, Margin, PoolView, entropy, least_confidence, margin,
                               select_top, top_k)
from alexp.acquisition.base import tie_salt

from conftest import CONF

STRATEGIES = sorted(p.stem for p in (CONF / "acquisition").glob("*.yaml"))


def strategy_from_config(name, **overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"acquisition={name}",
                                           *(f"acquisition.{k}={v}" for k, v in overrides.items())])
    return instantiate(cfg.acquisition, _convert_="all")


class Revealed:
    """The greedy oracle as alexp's loop hands it the truth; here the model's own predictions stand in for the truth
    of unlabeled rows, and the first 50 rows for the test set (what these tests check does not depend on it)."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __getattr__(self, name):
        return getattr(self.strategy, name)

    def __call__(self, model, pool, n, rng):
        from sklearn.base import clone

        from alexp import models

        guess = models.predict(model, pool.X, pool.n_classes)
        truth = guess if pool.labels is None else np.where(pool.labels >= 0, pool.labels, guess)
        self.strategy.reveal(truth, pool.X[:50], truth[:50], clone(model), 0)
        return self.strategy(model, pool, n, rng)


@pytest.fixture(params=STRATEGIES)
def strategy(request):
    chosen = strategy_from_config(request.param)
    return Revealed(chosen) if getattr(chosen, "reads_truth", False) else chosen


@pytest.fixture
def model(strategy, fitted, fitted_mlp):
    """The fitted model a strategy runs on: one that draws posterior samples for BALD and BatchBALD."""
    return fitted_mlp if getattr(strategy, "needs_samples", False) else fitted


def half_labeled(pool, rng):
    """A pool view with half the rows labeled (with their true labels)."""
    n = len(pool.y)
    labeled_in = np.full(n, -1)
    labeled_in[rng.choice(n, n // 2, replace=False)] = 0
    labels = np.where(labeled_in >= 0, pool.y, -1)
    return PoolView(pool.X, labeled_in, labels)


def test_every_strategy_returns_n_distinct_unlabeled_rows(strategy, pool, model, rng):
    view = half_labeled(pool, rng)
    ids = strategy(model, view, 25, np.random.default_rng(1))
    assert len(ids) == 25 and len(np.unique(ids)) == 25
    assert ids.min() >= 0 and ids.max() < len(pool.y)
    assert (view.labeled_in[ids] == -1).all()


def test_every_strategy_is_seeded_and_leaves_the_pool_untouched(strategy, pool, model, rng):
    view = half_labeled(pool, rng)
    X_before, labeled_before = pool.X.copy(), view.labeled_in.copy()
    a = strategy(model, view, 10, np.random.default_rng(7))
    b = strategy(model, view, 10, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pool.X, X_before)
    np.testing.assert_array_equal(view.labeled_in, labeled_before)


def test_every_strategy_can_take_the_whole_remaining_pool(strategy, pool, model):
    labeled_in = np.zeros(len(pool.y), dtype=int)
    labeled_in[:5] = -1
    view = PoolView(pool.X, labeled_in, np.where(labeled_in >= 0, pool.y, -1))
    ids = strategy(model, view, 5, np.random.default_rng(0))
    assert sorted(ids) == [0, 1, 2, 3, 4]


def test_every_strategy_respects_a_candidate_restriction(strategy, pool, model, rng):
    view = half_labeled(pool, rng).restrict(np.arange(0, 600, 3))
    ids = strategy(model, view, 12, np.random.default_rng(2))
    assert (ids % 3 == 0).all() and (view.labeled_in[ids] == -1).all() and len(np.unique(ids)) == 12


PROBA = np.array([[0.50, 0.50], [0.90, 0.10], [0.65, 0.35], [0.20, 0.80], [0.45, 0.55], [0.99, 0.01]])


def test_scores_match_hand_computation():
    # entropy of (p, 1-p) in nats, -(p1 - p2) for the top two, 1 - max p
    p = PROBA[:, 1]
    np.testing.assert_allclose(entropy(PROBA), -(p * np.log(p) + (1 - p) * np.log(1 - p)))
    np.testing.assert_allclose(margin(PROBA), [0, -0.8, -0.3, -0.6, -0.1, -0.98])
    np.testing.assert_allclose(least_confidence(PROBA), [0.5, 0.1, 0.35, 0.2, 0.45, 0.01])


def test_multiclass_scores_match_hand_computation():
    proba = np.array([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25]])
    np.testing.assert_allclose(margin(proba), [-0.3, -0.05])
    np.testing.assert_allclose(least_confidence(proba), [0.4, 0.6])
    np.testing.assert_allclose(entropy(proba)[1], -(0.4 * np.log(0.4) + 0.35 * np.log(0.35) + 0.25 * np.log(0.25)))


class FixedProba:
    """A 'model' whose P(class) for row i is PROBA[i]: rows of X are just their own index."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        return PROBA[np.asarray(X).ravel().astype(int)]


@pytest.mark.parametrize("strategy", [Entropy(chunk_size=2), Margin(chunk_size=4), LeastConfidence()])
def test_uncertainty_strategies_pick_the_hand_ranked_rows(strategy):
    X = np.arange(len(PROBA)).reshape(-1, 1)
    # By closeness to 0.5: row 0 (0.50), 4 (0.55), 2 (0.35), 3 (0.80), 1 (0.10), 5 (0.01).
    ids = strategy(FixedProba(), PoolView(X, np.full(len(PROBA), -1)), 3, np.random.default_rng(0))
    assert ids.tolist() == [0, 4, 2]
    labeled_in = np.array([0, -1, -1, -1, 0, -1])  # rows 0 and 4 already labeled
    ids = strategy(FixedProba(), PoolView(X, labeled_in), 3, np.random.default_rng(0))
    assert ids.tolist() == [2, 3, 1]


def test_top_k_keeps_the_highest_scores_and_orders_ties_by_seeded_keys():
    scores = np.array([1.0, 3.0, 3.0, 3.0, 2.0])
    rows = np.arange(5)
    picks = [tuple(top_k(scores, rows, 2, tie_salt(np.random.default_rng(s)))) for s in range(20)]
    assert all(set(p) <= {1, 2, 3} for p in picks)
    assert len(set(picks)) > 1  # which tied rows win depends on the seed
    assert top_k(scores, rows, 5, tie_salt(np.random.default_rng(0)))[3:].tolist() == [4, 0]


def test_select_top_is_independent_of_the_chunk_size(rng):
    scores = rng.integers(0, 20, 1000).astype(float)  # many ties
    view = PoolView(scores[:, None], np.full(1000, -1))
    full = select_top(lambda x: x[:, 0], view, 37, np.random.default_rng(3), chunk_size=1000)
    assert sorted(scores[full], reverse=True) == sorted(scores, reverse=True)[:37]
    for chunk in (1, 50, 333):
        got = select_top(lambda x: x[:, 0], view, 37, np.random.default_rng(3), chunk_size=chunk)
        np.testing.assert_array_equal(got, full)


def test_select_top_skips_labeled_rows():
    view = PoolView(np.arange(10.0)[:, None], np.array([0, -1] * 5))
    got = select_top(lambda x: x[:, 0], view, 3, np.random.default_rng(0), chunk_size=4)
    assert got.tolist() == [9, 7, 5]


def test_ties_are_broken_at_random_by_the_seed():
    X = np.zeros((100, 1))
    const = type("Const", (), {"classes_": np.array([0, 1]),
                               "predict_proba": lambda self, X: np.full((len(X), 2), 0.5)})()
    view = PoolView(X, np.full(100, -1))
    a = Entropy()(const, view, 10, np.random.default_rng(0))
    b = Entropy()(const, view, 10, np.random.default_rng(1))
    assert set(a) != set(b)
    np.testing.assert_array_equal(a, Entropy()(const, view, 10, np.random.default_rng(0)))


def test_sparse_pools_are_scored_like_dense_ones(pool, fitted):
    from scipy.sparse import csr_matrix

    labeled_in = np.full(len(pool.y), -1)
    dense = Margin(chunk_size=128)(fitted, PoolView(pool.X, labeled_in), 20, np.random.default_rng(0))
    sparse = Margin(chunk_size=128)(fitted, PoolView(csr_matrix(pool.X), labeled_in), 20, np.random.default_rng(0))
    np.testing.assert_array_equal(dense, sparse)


def model_for(strategy):
    """An unfitted model the strategy can run on."""
    from sklearn.linear_model import LogisticRegression

    from alexp.models import MLPHead

    return MLPHead(epochs=10, random_state=0) if getattr(strategy, "needs_samples", False) else \
        LogisticRegression(max_iter=500)


def test_every_strategy_works_on_a_sparse_pool(strategy, pool, rng):
    from scipy.sparse import csr_matrix

    X = csr_matrix(np.where(np.abs(pool.X) > 1, pool.X, 0))  # tf-idf-like: mostly zeros
    model = model_for(strategy).fit(X[:60], pool.y[:60])
    view = half_labeled(pool, rng)
    ids = strategy(model, PoolView(X, view.labeled_in, view.labels), 15, np.random.default_rng(0))
    assert len(np.unique(ids)) == 15 and (view.labeled_in[ids] == -1).all()


def test_every_strategy_handles_three_classes(strategy):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=400, n_features=6, n_informative=4, n_classes=3, random_state=1)
    labeled_in = np.where(np.arange(400) < 60, 0, -1)
    model = model_for(strategy).fit(X[:60], y[:60])
    view = PoolView(X, labeled_in, np.where(labeled_in >= 0, y, -1), n_classes=3)
    ids = strategy(model, view, 12, np.random.default_rng(0))
    assert len(np.unique(ids)) == 12 and (labeled_in[ids] == -1).all()


@pytest.mark.parametrize("name", ["entropy", "margin", "least_confidence", "bald"])
def test_max_candidates_scores_only_a_seeded_subsample(name, pool, fitted, fitted_mlp, rng):
    strategy = strategy_from_config(name, max_candidates=40)
    model = fitted_mlp if name == "bald" else fitted
    seen = []

    class Spy:  # records how many rows the strategy asks the model about
        classes_ = model.classes_

        def predict_proba(self, X):
            seen.append(len(X))
            return model.predict_proba(X)

        def sample_proba(self, X, n_samples, rng):
            seen.append(len(X))
            return model.sample_proba(X, n_samples, rng)

    view = half_labeled(pool, rng)
    a = strategy(Spy(), view, 10, np.random.default_rng(3))
    assert sum(seen) == 40 and (view.labeled_in[a] == -1).all()
    np.testing.assert_array_equal(a, strategy(Spy(), view, 10, np.random.default_rng(3)))


@pytest.mark.parametrize("name", ["entropy", "bald", "coreset", "badge", "boundary_pairs"])
def test_max_candidates_must_be_a_positive_count_at_construction(name):
    from alexp import AlexpError
    from alexp.acquisition import Bald, BatchBald, Badge, BoundaryPairs, Coreset, Entropy

    cls = {"entropy": Entropy, "bald": Bald, "batchbald": BatchBald, "coreset": Coreset, "badge": Badge,
           "boundary_pairs": BoundaryPairs}[name]
    with pytest.raises(AlexpError, match="max_candidates must be a positive number of rows or null"):
        cls(max_candidates=0)


def test_batchbald_names_its_top_bald_prefilter_shortlist_not_max_candidates():
    """max_candidates means a random subsample in every strategy that has it; BatchBALD's score pre-filter is
    another thing and has its own name."""
    from alexp import AlexpError
    from alexp.acquisition import BatchBald

    assert "max_candidates" not in BatchBald.__dataclass_fields__
    with pytest.raises(AlexpError, match="shortlist must be a positive number of rows or null"):
        BatchBald(shortlist=0)


@pytest.mark.parametrize("name", ["coreset", "badge", "boundary_pairs", "entropy"])
def test_max_candidates_below_the_batch_size_still_gives_a_batch_of_distinct_rows(name, pool, fitted, rng):
    """The subsample never holds fewer rows than the batch: coreset once returned duplicates, badge raised."""
    picked = strategy_from_config(name, max_candidates=3)(fitted, half_labeled(pool, rng), 10, np.random.default_rng(0))
    assert len(picked) == 10 and len(np.unique(picked)) == 10


def test_boundary_pairs_with_lone_members_facing_each_other_do_not_crash():
    """Two one-member clusters of opposite labels (a small pool, found by the strategy benchmark on a 400-row Cohen
    review): neither side has an own-member distance, so their contact ratio is unknown (infinite), not a crash."""
    from alexp.acquisition import BoundaryPairs
    from alexp.acquisition.boundary import Cluster

    X = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [5.0, 6.0], [6.0, 5.0]])
    clusters = [Cluster(0, np.array([0]), X[0]), Cluster(1, np.array([1]), X[1]),
                Cluster(1, np.array([2, 3, 4]), X[2:].mean(axis=0))]
    scored = BoundaryPairs(members_per_side=5).contacts(X, clusters)
    ratios = sorted(r for r, _ in scored)
    assert ratios[-1] == float("inf") and len(scored) == 2  # the lone pair scored as unknown, the other measured
    lone = next(pairs for r, pairs in scored if r == float("inf"))
    np.testing.assert_array_equal(lone, [[0, 1]])
