"""Shared fixtures: a tiny rare-positive pool and a seeded generator."""

import os
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


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    """Generated pools and reference probabilities go to a temporary cache, not the user's."""
    os.environ.setdefault("ALEXP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


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


@pytest.fixture(scope="session")
def fitted_mlp(pool):
    """An MC-dropout MLP head fitted on the same 60 rows: a model that draws posterior samples."""
    from alexp.models import MLPHead

    return MLPHead(epochs=20, random_state=0).fit(pool.X[:60], pool.y[:60])


WORDS = ("good great fine nice love bad awful poor hate worst the a movie film plot was is it this "
         "very so really quite item number").split()


def text_pool(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short texts whose label is whether they contain a negative word (~30% positives)."""
    rng = np.random.default_rng(seed)
    pos, neg, filler = WORDS[5:10], WORDS[:5], WORDS[10:]
    y = (rng.random(n) < 0.3).astype(int)
    texts = [" ".join([*rng.choice(filler, 3), rng.choice(pos if label else neg), *rng.choice(filler, 2)])
             for label in y]
    return texts, y


@pytest.fixture(scope="session")
def tiny_transformer(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with a word vocabulary, built from a config and saved like a hub model folder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    BertTokenizerFast(vocab=vocab).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(path)
    return str(path)
