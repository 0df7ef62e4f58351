"""Shared fixtures: a tiny rare-positive pool and a seeded generator."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


@dataclass
class Pool:
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def pool() -> Pool:
    """600 pool rows + 200 test rows, 8 features, ~10% positives."""
    X, y = make_classification(n_samples=800, n_features=8, n_informative=4, n_redundant=0,
                               weights=[0.9], class_sep=1.0, random_state=0)
    X = X.astype(np.float32)
    return Pool(X[:600], y[:600], X[600:], y[600:])


@pytest.fixture(scope="session")
def fitted(pool):
    """A logistic regression fitted on 60 pool rows."""
    return LogisticRegression(max_iter=1000).fit(pool.X[:60], pool.y[:60])
