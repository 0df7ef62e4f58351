"""A zero-shot scout ("LLM-0"): class probabilities before any label, from descriptions of the classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import softmax

from alexp.features import SentenceEmbedding, pick_device


class ZeroShot:
    """Scores each item against a natural-language description of each class (`classes`' order); needs no labels.

    Default: the descriptions are embedded with the run's own sentence model (features=minilm) and each
    item's probabilities are a softmax over its cosine similarities to them, divided by `temperature`
    (smaller = sharper). When the run's inputs are raw texts (model=transformer), the texts and descriptions
    are embedded with `embedding` (a SentenceEmbedding; the packaged MiniLM by default). With `pipeline` (a
    local model folder or hub id of an NLI model), a transformers zero-shot-classification pipeline scores the
    raw texts instead, with `hypothesis_template`; that needs raw-text inputs. Behaves as a fitted classifier
    (`classes_`, `predict_proba`), so every acquisition strategy can use it.
    """

    accepts_text = True

    def __init__(self, descriptions: Sequence[str] | None, classes: Sequence | None = None, temperature: float = 0.05,
                 embedding: SentenceEmbedding | None = None, pipeline: str | None = None,
                 hypothesis_template: str = "This example is {}.", batch_size: int = 32, device: str = "auto",
                 features=None):
        if not descriptions or len(descriptions) < 2:
            raise ValueError(f"descriptions must describe each class in words, one per class (e.g. "
                             f"[a news headline, a clickbait headline]); got {descriptions!r}. Set "
                             f"scout.descriptions or data.descriptions")
        if classes is not None and len(classes) != len(descriptions):
            raise ValueError(f"descriptions must give one description per class {list(classes)}; got "
                             f"{len(descriptions)}: {list(descriptions)} (quote a description that holds a comma)")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.descriptions, self.temperature = [str(d) for d in descriptions], float(temperature)
        self.embedding, self.pipeline, self.hypothesis_template = embedding, pipeline, hypothesis_template
        self.batch_size, self.device, self.features = batch_size, device, features
        self.classes_ = np.arange(len(self.descriptions))

    def predict_proba(self, X) -> NDArray[np.float64]:
        text = _is_text(X)
        if self.pipeline is not None:
            if not text:
                raise ValueError("a zero-shot pipeline scout reads raw texts: use features=identity with a text "
                                 "dataset, or drop scout.pipeline to score sentence embeddings")
            return self._pipeline_proba([str(t) for t in X])
        encoder = (self.embedding or SentenceEmbedding(progress=False)) if text else self.features
        if encoder is None or not hasattr(encoder, "transform"):
            raise ValueError("the zero-shot scout needs text data: raw texts or sentence embeddings (features=minilm)")
        E = np.asarray(encoder.transform(np.asarray(X, dtype=object))) if text else X
        D = encoder.transform(np.asarray(self.descriptions, dtype=object))
        D = np.asarray(D.toarray() if hasattr(D, "toarray") else D, dtype=np.float64)
        if D.shape[1] != E.shape[1]:
            raise ValueError(f"the descriptions embed to {D.shape[1]} dims but the inputs have {E.shape[1]}: "
                             "the scout needs the inputs' own sentence model (features=minilm)")
        return softmax(_cosine(E, D) / self.temperature, axis=1)

    def _pipeline_proba(self, texts: list[str]) -> NDArray[np.float64]:
        from transformers import pipeline

        device = pick_device(self.device)
        classify = pipeline("zero-shot-classification", model=self.pipeline, device=0 if device == "cuda" else -1)
        out = classify(texts, candidate_labels=self.descriptions, hypothesis_template=self.hypothesis_template,
                       batch_size=self.batch_size)
        out = [out] if isinstance(out, dict) else out
        order = {d: k for k, d in enumerate(self.descriptions)}
        proba = np.zeros((len(texts), len(self.descriptions)))
        for i, result in enumerate(out):
            proba[i, [order[label] for label in result["labels"]]] = result["scores"]
        return proba


def _is_text(X) -> bool:
    """Raw texts (an array of str or objects) rather than a feature matrix."""
    return not hasattr(X, "toarray") and np.asarray(X[:1]).dtype.kind in "OUS"


def _cosine(A, B: NDArray) -> NDArray[np.float64]:
    """Cosine similarity of each row of A (dense or sparse) with each row of B."""
    A_norm = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).ravel()) if hasattr(A, "multiply") else \
        np.linalg.norm(A, axis=1)
    B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-12)
    return np.asarray(A @ B.T, dtype=np.float64) / np.maximum(A_norm, 1e-12)[:, None]
