"""Budget: the batch schedule, the initial set, and validation."""

import numpy as np
import pytest

from alexp import AlexpError
from alexp.budget import Budget


def schedule(budget: Budget, n_pool: int) -> list[int]:
    """Batch sizes the loop would buy, round by round, until next_batch says stop."""
    sizes, labeled = [], 0
    for round_ in range(1000):
        n = budget.next_batch(round_, labeled, n_pool - labeled)
        if n == 0:
            return sizes
        sizes.append(n)
        labeled += n
    raise AssertionError("next_batch never returned 0")


def error_message(make) -> str:
    with pytest.raises(AlexpError) as info:
        make()
    assert "\n" not in str(info.value)
    return str(info.value)


# --- next_batch ----------------------------------------------------------------------------------------------

def test_round_zero_is_the_initial_set_then_rounds_of_batch_size():
    assert schedule(Budget(initial=10, batch_size=5, rounds=3), n_pool=1000) == [10, 5, 5, 5]


def test_zero_rounds_buys_only_the_initial_set():
    assert schedule(Budget(initial=10, batch_size=5, rounds=0), n_pool=1000) == [10]


def test_max_labels_truncates_the_last_batch():
    budget = Budget(initial=10, batch_size=5, rounds=None, max_labels=22)
    assert schedule(budget, n_pool=1000) == [10, 5, 5, 2]


def test_rounds_stop_before_max_labels_when_fewer():
    budget = Budget(initial=10, batch_size=5, rounds=2, max_labels=100)
    assert schedule(budget, n_pool=1000) == [10, 5, 5]


def test_schedule_stops_when_the_pool_runs_out():
    assert schedule(Budget(initial=10, batch_size=5, rounds=10), n_pool=22) == [10, 5, 5, 2]


# --- initial_ids ---------------------------------------------------------------------------------------------

def truth_with(counts) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


@pytest.mark.parametrize("counts, initial, expected", [
    ([980, 20], 20, [19, 1]),       # 2% positives: the at-least-one rule gives the rare class one item
    ([995, 5], 7, [6, 1]),
    ([700, 300], 20, [14, 6]),      # exact proportions
    ([667, 333], 10, [7, 3]),       # largest remainder: 6.67 -> 7, 3.33 -> 3
    ([500, 300, 200], 10, [5, 3, 2]),
])
def test_stratified_initial_set_has_proportional_class_counts(counts, initial, expected):
    truth = truth_with(counts)
    ids = Budget(initial=initial, stratified=True).initial_ids(len(truth), np.random.default_rng(0), truth)
    assert len(ids) == initial and len(np.unique(ids)) == initial
    assert np.bincount(truth[ids], minlength=len(counts)).tolist() == expected


def test_unstratified_initial_set_has_the_right_size_and_distinct_rows():
    ids = Budget(initial=30, stratified=False).initial_ids(200, np.random.default_rng(0))
    assert len(ids) == 30 and len(np.unique(ids)) == 30
    assert ids.min() >= 0 and ids.max() < 200


def test_unstratified_initial_set_is_uniform_over_the_pool():
    budget, rng = Budget(initial=10, stratified=False), np.random.default_rng(0)
    hits = np.bincount(np.concatenate([budget.initial_ids(50, rng) for _ in range(2000)]), minlength=50)
    # Each row is picked with probability 10/50: 400 times in expectation, sd ~18.
    assert hits.min() > 310 and hits.max() < 490


def test_unstratified_initial_set_ignores_class_shares():
    truth = truth_with([980, 20])
    budget, rng = Budget(initial=20, stratified=False), np.random.default_rng(0)
    positives = [truth[budget.initial_ids(len(truth), rng, truth)].sum() for _ in range(200)]
    assert 0 in positives  # with no stratification a draw often misses the 2% class


@pytest.mark.parametrize("stratified", [True, False])
def test_initial_set_depends_only_on_the_rng_seed(stratified):
    truth, budget = truth_with([900, 100]), Budget(initial=20, stratified=stratified)
    a = budget.initial_ids(len(truth), np.random.default_rng(3), truth)
    b = budget.initial_ids(len(truth), np.random.default_rng(3), truth)
    c = budget.initial_ids(len(truth), np.random.default_rng(4), truth)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a), np.sort(c))


def test_stratified_initial_set_without_truth_is_an_error():
    message = error_message(lambda: Budget(stratified=True).initial_ids(100, np.random.default_rng(0)))
    assert "stratified" in message


# --- validation ----------------------------------------------------------------------------------------------

def test_negative_batch_size_is_named_with_its_value():
    message = error_message(lambda: Budget(batch_size=-5))
    assert "batch_size" in message and "-5" in message


def test_negative_initial_is_rejected_and_zero_is_a_cold_start_of_one_batch():
    message = error_message(lambda: Budget(initial=-1))
    assert "initial" in message and "-1" in message
    assert schedule(Budget(initial=0, batch_size=5, rounds=2), n_pool=1000) == [5, 5, 5]


def test_rounds_and_max_labels_cannot_both_be_null():
    message = error_message(lambda: Budget(rounds=None, max_labels=None))
    assert "rounds" in message and "max_labels" in message


def test_max_labels_below_initial_is_rejected():
    message = error_message(lambda: Budget(initial=10, max_labels=5))
    assert "max_labels=5" in message and "initial=10" in message


def test_negative_rounds_are_rejected():
    assert "rounds" in error_message(lambda: Budget(rounds=-1))


# --- check_pool ----------------------------------------------------------------------------------------------

def test_check_pool_accepts_a_pool_that_fits():
    Budget(initial=20, max_labels=100).check_pool(100, n_classes=2)


def test_check_pool_rejects_initial_larger_than_the_pool():
    message = error_message(lambda: Budget(initial=50).check_pool(40))
    assert "budget.initial=50" in message and "40" in message


def test_check_pool_rejects_max_labels_larger_than_the_pool():
    message = error_message(lambda: Budget(initial=10, max_labels=300).check_pool(200))
    assert "budget.max_labels=300" in message and "200" in message


def test_check_pool_rejects_stratified_initial_below_the_number_of_classes():
    message = error_message(lambda: Budget(initial=2, stratified=True).check_pool(100, n_classes=3))
    assert "budget.initial=2" in message and "3 classes" in message


def test_check_pool_allows_small_initial_when_not_stratified():
    Budget(initial=2, rounds=4, stratified=False).check_pool(100, n_classes=3)


def test_booleans_are_not_counts():
    with pytest.raises(AlexpError, match="batch_size must be a positive integer, got True"):
        Budget(batch_size=True)


def test_a_schedule_tops_the_labels_up_to_each_count():
    budget = Budget(schedule=[100, 300, 1000, 3000])
    assert (budget.initial, budget.rounds) == (100, 3)
    assert schedule(budget, n_pool=100_000) == [100, 200, 700, 2000]
    assert schedule(budget, n_pool=1500) == [100, 200, 700, 500]  # the pool runs out
    for bad in ([], [100, 100], [300, 100], [0, 10]):
        message = error_message(lambda bad=bad: Budget(schedule=bad))
        assert "schedule must be increasing positive label counts" in message


def test_check_pool_rejects_a_budget_the_pool_cannot_meet():
    """A 30-row file with the default 220-label budget once ran to the end and cut the budget silently."""
    message = error_message(lambda: Budget().check_pool(24))
    assert "20 + 10 x 20 = 220 labels exceed the pool of 24 rows" in message and "budget.max_labels=24" in message
    Budget(max_labels=24).check_pool(24)  # the fix it suggests works
    Budget(schedule=[10, 30]).check_pool(30)
    assert "schedule ending at 31" in error_message(lambda: Budget(schedule=[10, 31]).check_pool(30))
    Budget(initial=2, rounds=None, max_cost=1000).check_pool(5)  # a money budget ends with the pool
