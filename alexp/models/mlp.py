"""A small torch classifier over fixed embeddings, with MC-dropout posterior samples for BALD."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from alexp.features import pick_device


def class_weights(y: NDArray[np.intp], n_classes: int, mode: str | None) -> NDArray[np.float32] | None:
    """Loss weight per class: None, or 'balanced' (n / (n_classes * count), as scikit-learn)."""
    if mode is None:
        return None
    if mode != "balanced":
        raise ValueError(f"class_weight must be null or balanced, got {mode!r}")
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    return (len(y) / (n_classes * np.maximum(counts, 1))).astype(np.float32)


@contextmanager
def seeded(seed: int, device: str = "cpu"):
    """torch's global generators (CPU, and the GPU when `device` is cuda) seeded inside, restored after."""
    import torch

    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.startswith("cuda") else []):
        torch.manual_seed(seed)
        yield


def dense_rows(X, rows: slice | NDArray) -> NDArray[np.float32]:
    """Rows of a dense or sparse matrix as a dense float32 array (sparse input is densified batch by batch)."""
    part = X[rows]
    part = part.toarray() if hasattr(part, "toarray") else np.asarray(part)
    return part.astype(np.float32, copy=False)


class MLPHead(ClassifierMixin, BaseEstimator):
    """Input -> Linear(hidden) -> ReLU -> Dropout -> Linear(classes), trained with AdamW on cross-entropy.

    `predict_proba` uses the network with dropout off. `sample_proba` draws MC-dropout posterior samples
    (Gal & Ghahramani 2016): sample s drops the same hidden units for every row (one sampled network per
    sample), so samples are consistent across rows, as BatchBALD's joint entropies need. Deterministic for
    a given `random_state` and sampling generator. Accepts dense or sparse features.
    """

    def __init__(self, hidden: int = 128, dropout: float = 0.3, epochs: int = 50, batch_size: int = 64,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-4, class_weight: str | None = None,
                 device: str = "cpu", random_state: int | None = None):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state

    def fit(self, X, y) -> MLPHead:
        import torch

        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        n_classes, device = len(self.classes_), pick_device(self.device)
        gen = torch.Generator().manual_seed(int(self.random_state or 0))
        with seeded(int(self.random_state or 0)):
            self.hidden_ = torch.nn.Linear(X.shape[1], self.hidden)
            self.out_ = torch.nn.Linear(self.hidden, n_classes)
        net = torch.nn.Sequential(self.hidden_, torch.nn.ReLU(), torch.nn.Dropout(self.dropout), self.out_).to(device)
        weights = class_weights(y_idx, n_classes, self.class_weight)
        loss_fn = torch.nn.CrossEntropyLoss(weight=None if weights is None else torch.from_numpy(weights).to(device))
        opt = torch.optim.AdamW(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        target = torch.from_numpy(y_idx.astype(np.int64))
        net.train()
        with seeded(int(self.random_state or 0), device):  # dropout masks while training
            for _ in range(self.epochs):
                order = torch.randperm(len(target), generator=gen).numpy()
                for start in range(0, len(order), self.batch_size):
                    rows = order[start:start + self.batch_size]
                    opt.zero_grad()
                    loss = loss_fn(net(torch.from_numpy(dense_rows(X, rows)).to(device)), target[rows].to(device))
                    loss.backward()
                    opt.step()
        net.eval()
        self.device_ = device
        return self

    def _hidden(self, X, batch: int = 8192):
        """Post-ReLU hidden activations of every row, in batches (no gradients)."""
        import torch

        with torch.no_grad():
            return torch.cat([torch.relu(self.hidden_(torch.from_numpy(dense_rows(X, slice(i, i + batch)))
                                                      .to(self.device_)))
                              for i in range(0, X.shape[0], batch)])

    def predict_proba(self, X) -> NDArray[np.float32]:
        import torch

        with torch.no_grad():
            return torch.softmax(self.out_(self._hidden(X)), dim=1).cpu().numpy()

    def predict(self, X) -> NDArray:
        """The most probable class (scikit-learn's protocol; TunedThreshold's cross-validation needs it)."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def sample_proba(self, X, n_samples: int = 20, rng: np.random.Generator | None = None) -> NDArray[np.float32]:
        """MC-dropout samples of the class probabilities: (n_samples, n_rows, n_classes)."""
        import torch

        rng = rng or np.random.default_rng(0)
        keep = 1.0 - self.dropout
        masks = torch.from_numpy((rng.random((n_samples, self.hidden)) < keep).astype(np.float32) / keep)
        with torch.no_grad():
            h = self._hidden(X)
            logits = torch.einsum("nh,sh,ch->snc", h, masks.to(self.device_), self.out_.weight) + self.out_.bias
            return torch.softmax(logits, dim=2).cpu().numpy()
