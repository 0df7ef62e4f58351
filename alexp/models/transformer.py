"""Fine-tuning a transformers sequence classifier inside the loop, as a scikit-learn-style classifier on text."""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from alexp.features import default_model_path, pick_device
from alexp.models.mlp import class_weights, seeded

log = logging.getLogger(__name__)


class TransformerClassifier(ClassifierMixin, BaseEstimator):
    """`AutoModelForSequenceClassification` + `AutoTokenizer` fine-tuned on the labeled texts each round.

    `name_or_path`: a local model folder or a hub id (null = the packaged all-MiniLM-L6-v2, which gets a fresh
    classification head). Only a hub id downloads anything. Training is AdamW with linear warm-up and decay
    over `epochs` passes; `class_weight: balanced` reweights rare positives in the loss. With `warm_start`
    each fit continues from the previous round's weights (the loop replays earlier rounds' fits when it
    resumes, so a resumed run matches an uninterrupted one); otherwise every round starts from the pretrained
    weights. `device: auto` takes CUDA when available; `progress` shows a bar while scoring a large pool.
    Inputs are raw texts (use features=identity).
    `sample_proba` draws MC-dropout samples (dropout layers on at inference; masks are per row).
    """

    accepts_text = True  # the loop passes raw texts, not features

    def __init__(self, name_or_path: str | None = None, epochs: int = 3, batch_size: int = 16,
                 learning_rate: float = 5e-5, weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                 max_length: int = 128, class_weight: str | None = None, warm_start: bool = False,
                 eval_batch_size: int = 128, device: str = "auto", progress: bool = False,
                 random_state: int | None = None):
        self.name_or_path = name_or_path
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.max_length = max_length
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.eval_batch_size = eval_batch_size
        self.device = device
        self.progress = progress
        self.random_state = random_state

    def _load(self, n_classes: int) -> None:
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = self.name_or_path or default_model_path()
        self.device_ = pick_device(self.device)
        self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        verbosity, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
        transformers.logging.set_verbosity_error()  # "newly initialized classifier weights": expected here
        transformers.logging.disable_progress_bar()  # a loading bar every round says nothing
        try:
            self.model_ = AutoModelForSequenceClassification.from_pretrained(path, num_labels=n_classes)
        finally:
            transformers.logging.set_verbosity(verbosity)
            if bars:
                transformers.logging.enable_progress_bar()
        self.model_.to(self.device_)

    def fit(self, X, y) -> TransformerClassifier:
        import torch
        from transformers import get_linear_schedule_with_warmup

        classes, y_idx = np.unique(np.asarray(y), return_inverse=True)
        warm = self.warm_start and hasattr(self, "model_") and np.array_equal(classes, self.classes_)
        self.classes_ = classes
        seed = int(self.random_state or 0)
        with seeded(seed, pick_device(self.device)):  # the new head's initial weights, and dropout while training
            if not warm:
                self._load(len(classes))
            texts = _texts(X)
            weights = class_weights(y_idx, len(classes), self.class_weight)
            loss_fn = torch.nn.CrossEntropyLoss(
                weight=None if weights is None else torch.from_numpy(weights).to(self.device_))
            opt = torch.optim.AdamW(self.model_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            steps = self.epochs * -(-len(texts) // self.batch_size)
            schedule = get_linear_schedule_with_warmup(opt, int(self.warmup_ratio * steps), steps)
            gen = torch.Generator().manual_seed(seed)
            target = torch.from_numpy(y_idx.astype(np.int64))
            self.model_.train()
            for _ in range(self.epochs):
                order = torch.randperm(len(texts), generator=gen).numpy()
                for start in range(0, len(order), self.batch_size):
                    rows = order[start:start + self.batch_size]
                    logits = self.model_(**self._encode([texts[i] for i in rows])).logits
                    loss = loss_fn(logits, target[rows].to(self.device_))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    schedule.step()
        self.model_.eval()
        return self

    def _encode(self, texts: list[str]):
        batch = self.tokenizer_(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device_) for k, v in batch.items()}

    def _logits(self, texts: list[str]):
        """Logits of every text, scored in batches of similar length (little padding), in the input order."""
        import torch
        from tqdm.auto import tqdm

        order = np.argsort([len(t) for t in texts], kind="stable")
        starts = tqdm(range(0, len(texts), self.eval_batch_size), desc="scoring", unit="batch", leave=False,
                      disable=None if self.progress and len(texts) >= 10 * self.eval_batch_size else True)
        with torch.no_grad():
            logits = torch.cat([self.model_(**self._encode([texts[j] for j in order[i:i + self.eval_batch_size]]))
                                .logits.float() for i in starts])
        return logits[torch.from_numpy(np.argsort(order))]

    def predict_proba(self, X) -> NDArray[np.float32]:
        import torch

        self.model_.eval()
        return torch.softmax(self._logits(_texts(X)), dim=1).cpu().numpy()

    def sample_proba(self, X, n_samples: int = 10, rng: np.random.Generator | None = None) -> NDArray[np.float32]:
        """MC-dropout samples of the class probabilities: (n_samples, n_rows, n_classes)."""
        import torch

        seed = int((rng or np.random.default_rng(0)).integers(2**31 - 1))
        texts = _texts(X)
        self.model_.train()  # dropout on; no gradients are taken
        try:
            with seeded(seed, self.device_):
                return np.stack([torch.softmax(self._logits(texts), dim=1).cpu().numpy() for _ in range(n_samples)])
        finally:
            self.model_.eval()


def _texts(X) -> list[str]:
    """The inputs as a list of str; a clear error if they are features rather than texts."""
    X = X if hasattr(X, "toarray") else np.asarray(X, dtype=object)
    if X.ndim != 1 or (X.shape[0] and not isinstance(X[0], str)):
        raise ValueError("TransformerClassifier takes raw texts (a 1-d array of str); use features=identity "
                         "with a text dataset")
    return [str(t) for t in X]
