"""Reference answers: each strategy's choice on a small pool equals a hand or brute-force computation."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from alexp.acquisition import (Badge, BoundaryPairs, ClassBalanced, ClusterMargin, Coreset, DensityWeighted,
                               Entropy, KLDisagreement, LeastConfidence, Margin, PoolView, VoteEntropy,
                               consensus_kl, k_center_greedy, vote_entropy)
from alexp.acquisition.committee import build_committee
from alexp.acquisition.diversity import kmeans_pp_factored
from alexp.acquisition.hybrid import round_robin


class Fixed(ClassifierMixin, BaseEstimator):
    """A 'model' whose P(class) for the row with index i (its only feature) is table[i]; fit does nothing."""

    def __init__(self, table=None):
        self.table = table

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        return np.asarray(self.table)[np.asarray(X).ravel().astype(int)]


class Opaque:
    """Hides a model's type, so alexp cannot take the binary-logistic shortcut."""

    def __init__(self, model):
        self.model, self.classes_ = model, model.classes_

    def predict_proba(self, X):
        return self.model.predict_proba(X)


def index_pool(n):
    """n candidate rows plus two labeled rows (one per class) after them; X holds each row's index."""
    labeled_in = np.r_[np.full(n, -1), 0, 0]
    return PoolView(np.arange(n + 2, dtype=float)[:, None], labeled_in, np.r_[np.full(n, -1), 0, 1])


def test_vote_entropy_and_consensus_kl_by_hand():
    votes = np.array([[0, 0, 1], [0, 1, 1], [0, 1, 0]])  # 3 members x 3 rows
    split = -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3))  # a 1-2 vote
    np.testing.assert_allclose(vote_entropy(votes, 2), [0.0, split, split])
    proba = np.array([[[0.9, 0.1]], [[0.5, 0.5]]])  # 2 members x 1 row
    m = np.array([0.7, 0.3])
    kl = lambda a: np.sum(a * np.log(a / m))  # noqa: E731
    np.testing.assert_allclose(consensus_kl(proba), [(kl(proba[0, 0]) + kl(proba[1, 0])) / 2])


def test_committee_strategies_pick_the_hand_computed_rows():
    # Three members' P(positive) for 5 rows. Votes: row0 3-0, row1 2-1, row2 1-2, row3 0-3, row4 2-1.
    labeled_rows = [[.5, .5], [.5, .5]]  # rows 5 and 6: the labeled ones, never candidates
    members = [Fixed([[.9, .1], [.4, .6], [.6, .4], [.3, .7], [.45, .55]] + labeled_rows),
               Fixed([[.8, .2], [.3, .7], [.4, .6], [.2, .8], [.55, .45]] + labeled_rows),
               Fixed([[.95, .05], [.7, .3], [.3, .7], [.1, .9], [.35, .65]] + labeled_rows)]
    pool = index_pool(5)
    votes = VoteEntropy(members=members)(None, pool, 3, np.random.default_rng(0))
    assert set(votes) == {1, 2, 4}  # the split votes
    P = np.stack([np.asarray(m.table)[:5] for m in members])
    expected = np.argsort(-consensus_kl(P), kind="stable")[:2]
    assert KLDisagreement(members=members)(None, pool, 2, np.random.default_rng(0)).tolist() == expected.tolist()


def test_committee_shortcut_equals_the_generic_computation(pool):
    labeled = np.arange(80)
    view = PoolView(pool.X, np.where(np.isin(np.arange(600), labeled), 0, -1),
                    np.where(np.arange(600) < 80, pool.y, -1))
    model = LogisticRegression(max_iter=500)
    for cls in (VoteEntropy, KLDisagreement):
        strategy = cls(n_members=5)
        committee = build_committee(model, view, np.random.default_rng(0), 5, None)
        fast = strategy._scorer(committee, 2)(pool.X)
        slow = strategy._scorer([Opaque(m) for m in committee], 2)(pool.X)
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-6)  # float32 pool, float32 X @ W


@pytest.mark.parametrize("cls", [Entropy, Margin, LeastConfidence])
def test_the_binary_logistic_shortcut_selects_what_the_probabilities_select(cls, pool):
    model = LogisticRegression(max_iter=500).fit(pool.X[:100], pool.y[:100])
    view = PoolView(pool.X, np.where(np.arange(600) < 100, 0, -1))
    fast = cls()(model, view, 30, np.random.default_rng(0))
    slow = cls()(Opaque(model), view, 30, np.random.default_rng(0))
    np.testing.assert_array_equal(fast, slow)


def brute_force_k_center(X, labeled, n):
    picks = []
    for _ in range(n):
        centers = list(labeled) + picks
        best, best_d = None, -1.0
        for i in range(len(X)):
            if i in centers:
                continue
            d = min(np.sum((X[i] - X[c]) ** 2) for c in centers)
            if d > best_d:
                best, best_d = i, d
        picks.append(best)
    return picks


def test_coreset_equals_brute_force_k_center_greedy():
    X = np.random.default_rng(4).normal(size=(25, 3))
    labeled = [0, 7]
    expected = brute_force_k_center(X, labeled, 6)
    view = PoolView(X, np.where(np.isin(np.arange(25), labeled), 0, -1))
    got = Coreset()(None, view, 6, np.random.default_rng(0))
    assert got.tolist() == expected
    assert k_center_greedy(X[[i for i in range(25) if i not in labeled]], X[labeled], 1).size == 1


def test_badge_factored_seeding_equals_seeding_on_explicit_gradient_embeddings(pool):
    model = LogisticRegression(max_iter=500).fit(pool.X[:100], pool.y[:100])
    X = pool.X[100:300].astype(np.float64)
    P = model.predict_proba(X)
    G = P.copy()
    G[np.arange(len(G)), P.argmax(1)] -= 1
    H = np.hstack([X, np.ones((len(X), 1))])
    E = (G[:, :, None] * H[:, None, :]).reshape(len(X), -1)  # explicit (p - onehot) (x) [x, 1]
    explicit = kmeans_pp_factored(lambda i: E @ E[i], (E * E).sum(1), 15, np.random.default_rng(9))
    view = PoolView(X, np.full(len(X), -1))
    factored = Badge()(model, view, 15, np.random.default_rng(9))
    np.testing.assert_array_equal(factored, explicit)
    assert explicit[0] == np.argmax((E * E).sum(1))  # BADGE starts from the largest gradient


def test_density_weighting_with_beta_zero_is_entropy_and_density_is_the_mean_cosine(pool):
    model = LogisticRegression(max_iter=500).fit(pool.X[:100], pool.y[:100])
    view = PoolView(pool.X, np.where(np.arange(600) < 100, 0, -1))
    np.testing.assert_array_equal(DensityWeighted(beta=0.0)(model, view, 10, np.random.default_rng(0)),
                                  Entropy()(Opaque(model), view, 10, np.random.default_rng(0)))
    from alexp.acquisition.uncertainty import _mean_unit_vector
    U = pool.X[100:] / np.linalg.norm(pool.X[100:], axis=1, keepdims=True)
    np.testing.assert_allclose(U @ _mean_unit_vector(view, 64), (U @ U.T).mean(axis=1), atol=1e-5)


def test_round_robin_takes_one_per_cluster_smallest_first():
    rows = np.arange(10)
    groups = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
    picks = round_robin(rows, groups, 6, np.random.default_rng(0))
    assert [groups[p] for p in picks] == [1, 2, 0, 1, 2, 0]


def test_cluster_margin_picks_among_the_lowest_margin_candidates(pool):
    model = LogisticRegression(max_iter=500).fit(pool.X[:100], pool.y[:100])
    view = PoolView(pool.X, np.where(np.arange(600) < 100, 0, -1))
    strategy = ClusterMargin(n_clusters=8, margin_multiplier=3)
    picks = strategy(model, view, 10, np.random.default_rng(0))
    lowest = Margin()(model, view, 30, np.random.default_rng(0))
    assert set(picks) <= set(lowest)
    clusters = strategy.clusters(pool.X)
    assert len(set(clusters[picks])) >= min(8, len(set(clusters[lowest])))  # spread over clusters


def test_class_balanced_fills_its_share_with_predicted_positives(pool):
    model = LogisticRegression(max_iter=500).fit(pool.X[:100], pool.y[:100])
    view = PoolView(pool.X, np.where(np.arange(600) < 100, 0, -1))
    predicted_positive = model.predict(pool.X) == 1
    picks = ClassBalanced(base=Entropy(), positive_share=0.5)(model, view, 20, np.random.default_rng(0))
    assert predicted_positive[picks].sum() >= 10
    assert predicted_positive[Entropy()(model, view, 20, np.random.default_rng(0))].sum() < 10  # unbalanced alone


def test_boundary_pairs_straddle_a_known_boundary_and_spread_along_it():
    rng = np.random.default_rng(0)
    # Two overlapping classes split by the line x = 0, stretched along y so that the boundary is long.
    X = np.vstack([rng.normal([-0.7, 0], [0.6, 4], (400, 2)), rng.normal([0.7, 0], [0.6, 4], (400, 2))])
    model = LogisticRegression()
    model.classes_, model.coef_, model.intercept_ = np.array([0, 1]), np.array([[4.0, 0.0]]), np.array([0.0])
    picks = BoundaryPairs(n_clusters=4)(model, PoolView(X, np.full(800, -1)), 20, rng)
    pairs = picks.reshape(-1, 2)
    assert len(np.unique(picks)) == 20
    for a, b in pairs:  # opposite predicted labels, on both sides of x = 0, near it
        assert np.sign(X[a, 0]) != np.sign(X[b, 0])
        assert abs(X[a, 0]) < 1.5 and abs(X[b, 0]) < 1.5
    mid_y = (X[pairs[:, 0], 1] + X[pairs[:, 1], 1]) / 2
    assert mid_y.max() - mid_y.min() > 6  # covers the boundary, not one spot of it


def test_boundary_pairs_overlap_test_keeps_only_clusters_that_meet():
    # Two classes split by x = 0, each a column of 4 well separated blobs along y: only the blobs facing each
    # other across x = 0 at the same height meet; the 12 cross pairs at different heights must not pass.
    rng = np.random.default_rng(0)
    heights = np.repeat([-30.0, -10.0, 10.0, 30.0], 100)
    left = np.column_stack([-np.abs(rng.normal(0, 1, 400)), heights + rng.normal(0, 1, 400)])
    X = np.vstack([left, left * [-1, 1]])
    model = LogisticRegression()
    model.classes_, model.coef_, model.intercept_ = np.array([0, 1]), np.array([[4.0, 0.0]]), np.array([0.0])
    strategy = BoundaryPairs(n_clusters=4, members_per_side=50)
    picks = strategy(model, PoolView(X, np.full(800, -1)), 8, rng)
    assert strategy.stats["pairs_overlap_share"] == 4 / 16 and strategy.stats["pairs_fallback"] == 0
    pairs = picks.reshape(-1, 2)
    np.testing.assert_allclose(X[pairs[:, 0], 1], X[pairs[:, 1], 1], atol=5)  # partners at the same height
    assert len(np.unique(np.floor(X[picks, 1] / 20))) == 4  # one pair per meeting blob pair


def test_boundary_pairs_fall_back_to_margin_when_no_clusters_overlap():
    X = np.vstack([np.random.default_rng(1).normal(-20, 1, (50, 2)), np.random.default_rng(2).normal(20, 1, (50, 2))])
    model = LogisticRegression()
    model.classes_, model.coef_, model.intercept_ = np.array([0, 1]), np.array([[1.0, 0.0]]), np.array([0.0])
    view = PoolView(X, np.full(100, -1))
    strategy = BoundaryPairs(n_clusters=2)
    got = strategy(model, view, 6, np.random.default_rng(0))
    np.testing.assert_array_equal(got, Margin()(model, view, 6, np.random.default_rng(0)))
    assert strategy.stats == {"pairs_overlap_share": 0.0, "pairs_contact_ratio": strategy.stats["pairs_contact_ratio"],
                              "pairs_fallback": 6.0} and strategy.stats["pairs_contact_ratio"] > 10


def test_a_heterogeneous_committee_from_the_command_line_runs(pool):
    from test_acquisition import strategy_from_config

    members = "[{_target_:sklearn.naive_bayes.GaussianNB},{_target_:sklearn.linear_model.LogisticRegression}]"
    strategy = strategy_from_config("kl_disagreement", members=members)
    assert [type(m).__name__ for m in strategy.members] == ["GaussianNB", "LogisticRegression"]
    labeled_in = np.where(np.arange(600) < 100, 0, -1)
    view = PoolView(pool.X, labeled_in, np.where(labeled_in >= 0, pool.y, -1))
    ids = strategy(None, view, 10, np.random.default_rng(0))
    assert len(np.unique(ids)) == 10 and (labeled_in[ids] == -1).all()


# --- BALD and BatchBALD on posterior samples whose mutual information is known ---------------------------------

HALF = np.array([1.0] * 10 + [0.0] * 10)  # half the sampled models are sure it is positive, half negative
TOY = {  # P(positive | sampled model s) for s = 0..19
    "aleatoric": np.full(20, 0.5),  # every model says 50/50: unsure, yet agreed: I = 0
    "disagree": HALF,  # I = H(0.5) - 0 = log 2
    "disagree_copy": HALF.copy(),  # the same information again
    "independent": np.tile([1.0, 0.0], 10),  # disagreement independent of "disagree": I = log 2
    "partial": np.where(np.arange(20) < 10, 0.5, 1.0),  # I = H(0.75) - log(2) / 2 (all of it shared with "disagree")
    "confident": np.full(20, 0.9),  # I = 0
}


class SampledModel:
    """A fitted stand-in whose posterior samples are TOY's; X holds row numbers."""

    classes_ = np.array([0, 1])

    def sample_proba(self, X, n_samples=20, rng=None):
        p1 = np.stack(list(TOY.values()), axis=1)[:, np.asarray(X).ravel().astype(int)]
        return np.stack([1 - p1, p1], axis=2)

    def predict_proba(self, X):
        return self.sample_proba(X).mean(axis=0)


def toy_pool():
    X = np.arange(len(TOY), dtype=float)[:, None]
    return PoolView(X, np.full(len(TOY), -1), np.full(len(TOY), -1))


def test_bald_is_the_mutual_information_of_label_and_model():
    from alexp.acquisition import bald

    mi = dict(zip(TOY, bald(SampledModel().sample_proba(np.arange(len(TOY))))))
    h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))  # noqa: E731
    np.testing.assert_allclose([mi[k] for k in TOY], [0, np.log(2), np.log(2), np.log(2), h(0.75) - np.log(2) / 2, 0],
                               atol=1e-12)


def test_bald_ranks_disagreement_above_mere_uncertainty():
    from alexp.acquisition import Bald

    names = list(TOY)
    picked = [names[i] for i in Bald()(SampledModel(), toy_pool(), 4, np.random.default_rng(0))]
    assert set(picked[:3]) == {"disagree", "disagree_copy", "independent"} and picked[3] == "partial"


@pytest.mark.parametrize("max_configs", [1024, 2])  # exact joint entropies, and sampled configurations
def test_batchbald_does_not_spend_a_batch_on_copies(max_configs):
    from alexp.acquisition import BatchBald, batch_bald

    names = list(TOY)
    for seed in range(5):
        picked = [names[i] for i in BatchBald(max_configs=max_configs)(SampledModel(), toy_pool(), 3,
                                                                          np.random.default_rng(seed))]
        assert "independent" in picked[:2] and len({"disagree", "disagree_copy"} & set(picked[:2])) == 1
        # BALD alone would take both copies (each scores log 2); the joint MI of the copies is only log 2.
    probs = SampledModel().sample_proba(np.arange(len(TOY)))
    assert len(batch_bald(probs, len(TOY), 1024, np.random.default_rng(0))) == len(TOY)
