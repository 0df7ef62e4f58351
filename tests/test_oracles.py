"""Oracles: the perfect oracle, and the noisy oracle's flip rate, kappa, order independence and seeding."""

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from alexp import AlexpError
from alexp.oracles import Noisy, Perfect

N = 100_000


def answers(oracle, ids) -> np.ndarray:
    """Labels the oracle gives for `ids`, in the order of `ids`."""
    oracle.request(np.asarray(ids))
    got = oracle.collect()
    return np.array([got[i] for i in np.asarray(ids).tolist()])


def test_perfect_returns_the_truth_for_requested_ids():
    truth = np.array([0, 1, 1, 0, 1, 0])
    oracle = Perfect(truth)
    oracle.request(np.array([4, 0, 2]))
    assert oracle.collect() == {4: 1, 0: 0, 2: 1}


def test_collect_is_none_before_a_request_and_after_collecting():
    oracle = Perfect(np.array([0, 1, 0]))
    assert oracle.collect() is None
    oracle.request(np.array([1]))
    assert oracle.collect() == {1: 1}
    assert oracle.collect() is None


@pytest.mark.parametrize("flip_rate", [0.05, 0.1, 0.3])
def test_noisy_flips_labels_at_flip_rate(flip_rate):
    truth = np.random.default_rng(0).integers(0, 2, N)
    got = answers(Noisy(truth, np.random.default_rng(1), flip_rate=flip_rate), np.arange(N))
    assert set(np.unique(got)) == {0, 1}
    assert abs(np.mean(got != truth) - flip_rate) < 0.01


@pytest.mark.parametrize("flip_rate", [0.02, 0.1])
def test_noisy_kappa_matches_the_docstring_formula(flip_rate):
    truth = (np.random.default_rng(0).random(N) < 0.05).astype(np.int64)
    got = answers(Noisy(truth, np.random.default_rng(1), flip_rate=flip_rate), np.arange(N))
    pi, e = truth.mean(), flip_rate
    expected = 2 * pi * (1 - pi) * (1 - 2 * e) / (2 * pi * (1 - pi) + e * (1 - 2 * pi) ** 2)
    assert abs(cohen_kappa_score(truth, got) - expected) < 0.02


def test_noisy_answers_do_not_depend_on_request_order_or_batching():
    truth = np.random.default_rng(0).integers(0, 2, 1000)
    ids = np.arange(1000)
    one_batch = answers(Noisy(truth, np.random.default_rng(5), flip_rate=0.3), ids)
    oracle = Noisy(truth, np.random.default_rng(5), flip_rate=0.3)
    second, first = ids[500:][::-1], ids[:500][::-1]
    two_batches = dict(zip(second.tolist(), answers(oracle, second).tolist()))
    two_batches.update(zip(first.tolist(), answers(oracle, first).tolist()))
    assert (one_batch != truth).any()  # some labels were flipped, so the comparison means something
    assert [two_batches[i] for i in ids.tolist()] == one_batch.tolist()


def test_noisy_answers_depend_only_on_the_rng_seed():
    truth, ids = np.random.default_rng(0).integers(0, 2, 1000), np.arange(1000)
    a = answers(Noisy(truth, np.random.default_rng(7), flip_rate=0.2), ids)
    b = answers(Noisy(truth, np.random.default_rng(7), flip_rate=0.2), ids)
    c = answers(Noisy(truth, np.random.default_rng(8), flip_rate=0.2), ids)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_noisy_multiclass_flips_to_another_class():
    truth = np.random.default_rng(0).integers(0, 3, 10_000)
    got = answers(Noisy(truth, np.random.default_rng(1), flip_rate=0.5, n_classes=3), np.arange(10_000))
    assert set(np.unique(got)) == {0, 1, 2}
    assert abs(np.mean(got != truth) - 0.5) < 0.02


@pytest.mark.parametrize("flip_rate", [1.5, -0.1])
def test_noisy_rejects_flip_rate_outside_0_1(flip_rate):
    with pytest.raises(AlexpError) as info:
        Noisy(np.array([0, 1]), np.random.default_rng(0), flip_rate=flip_rate)
    assert "flip_rate" in str(info.value) and repr(flip_rate) in str(info.value)
