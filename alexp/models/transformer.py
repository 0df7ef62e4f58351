"""Fine-tuning a transformers sequence classifier inside the loop, as a scikit-learn-style classifier on text.

Scoring a pool every round is most of a transformer round's time, so nothing is computed twice:

- texts are tokenized once per run (a store shared by the round's clones of the model);
- batches are sorted by token count and padded only to their longest text (dynamic padding);
- scoring runs under `torch.inference_mode`, on the threads the runner gives the job;
- with `freeze_layers=N`, the embeddings and the lower N layers keep their pretrained weights, so their output
  for every text of the run is computed once (on disk in `cache_dir` for the next run) and each round trains
  and scores only the layers above.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from alexp.atomic import atomic_path
from alexp.features import _locked, default_model_path, pick_device
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

    `freeze_layers: N` (0 = fine-tune everything) keeps the embeddings and the lower N encoder layers at their
    pretrained weights: their output for each text is computed once per run (`prepare`, which the loop calls
    with the pool and test texts) and only the layers above are trained and run each round. Needs a BERT-style
    encoder (`embeddings` + `encoder.layer`: BERT, MiniLM, RoBERTa, ELECTRA). The frozen layers see no dropout
    while training. With `cache_dir` set, their outputs are kept there (float32, memory-mapped, about
    tokens x hidden size x 4 bytes: ~1.1 GB for 25k tweets with MiniLM), so a second run on the same texts,
    or a resumed one, loads them.

    `sample_proba` draws MC-dropout samples (dropout layers on at inference; masks are per row).
    """

    accepts_text = True  # the loop passes raw texts, not features

    def __init__(self, name_or_path: str | None = None, epochs: int = 3, batch_size: int = 16,
                 learning_rate: float = 5e-5, weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                 max_length: int = 128, class_weight: str | None = None, warm_start: bool = False,
                 eval_batch_size: int = 128, freeze_layers: int = 0, cache_dir: str | None = None,
                 device: str = "auto", progress: bool = False, random_state: int | None = None):
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
        self.freeze_layers = freeze_layers
        self.cache_dir = cache_dir
        self.device = device
        self.progress = progress
        self.random_state = random_state

    # --- the texts of a run, tokenized (and through the frozen layers) once --------------------------------

    def prepare(self, texts) -> None:
        """Tokenize the run's texts (pool and test) once, and with `freeze_layers` compute (or load from
        `cache_dir`) the frozen layers' output for all of them in one pass, so every round, and a resumed run,
        reads the same numbers. Calling it is optional: texts it did not see are handled when they come."""
        _store(self).reset(_texts(texts), self)

    def _rows(self, texts: list[str]) -> NDArray[np.intp]:
        return _store(self).rows(texts, self)

    # --- fitting and scoring ------------------------------------------------------------------------------

    def _load(self, n_classes: int) -> None:
        from transformers import AutoModelForSequenceClassification

        self.device_ = pick_device(self.device)
        with _quiet():
            self.model_ = AutoModelForSequenceClassification.from_pretrained(self._path(), num_labels=n_classes)
        if self.freeze_layers:
            base = _encoder_parts(self.model_.base_model, self.freeze_layers)
            base.embeddings = _passthrough()  # the model starts from the cached output of the frozen layers
            base.encoder.layer = base.encoder.layer[self.freeze_layers:]
        _first_token_last_layer(self.model_, embeds=bool(self.freeze_layers))
        self.model_.to(self.device_)

    def _path(self) -> str:
        return self.name_or_path or default_model_path()

    def fit(self, X, y) -> TransformerClassifier:
        import torch
        from transformers import get_linear_schedule_with_warmup

        classes, y_idx = np.unique(np.asarray(y), return_inverse=True)
        warm = self.warm_start and hasattr(self, "model_") and np.array_equal(classes, self.classes_)
        self.classes_ = classes
        seed = int(self.random_state or 0)
        rows = self._rows(_texts(X))
        with seeded(seed, pick_device(self.device)):  # the new head's initial weights, and dropout while training
            if not warm:
                self._load(len(classes))
            weights = class_weights(y_idx, len(classes), self.class_weight)
            loss_fn = torch.nn.CrossEntropyLoss(
                weight=None if weights is None else torch.from_numpy(weights).to(self.device_))
            opt = torch.optim.AdamW(self.model_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            steps = self.epochs * -(-len(rows) // self.batch_size)
            schedule = get_linear_schedule_with_warmup(opt, int(self.warmup_ratio * steps), steps)
            gen = torch.Generator().manual_seed(seed)
            target = torch.from_numpy(y_idx.astype(np.int64))
            store = _store(self)
            self.model_.train()
            for _ in range(self.epochs):
                order = torch.randperm(len(rows), generator=gen).numpy()
                for start in range(0, len(order), self.batch_size):
                    batch = order[start:start + self.batch_size]
                    logits = self.model_(**store.batch(rows[batch], self.device_)).logits
                    loss = loss_fn(logits, target[batch].to(self.device_))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    schedule.step()
        self.model_.eval()
        return self

    def _logits(self, texts: list[str]):
        """Logits of every text, scored in batches of similar token counts (little padding), in input order."""
        import torch
        from tqdm.auto import tqdm

        store = _store(self)
        rows = self._rows(texts)
        order = np.argsort(store.lengths[rows], kind="stable")
        starts = tqdm(range(0, len(rows), self.eval_batch_size), desc="scoring", unit="batch", leave=False,
                      disable=None if self.progress and len(rows) >= 10 * self.eval_batch_size else True)
        with torch.inference_mode():
            logits = [self.model_(**store.batch(rows[order[i:i + self.eval_batch_size]], self.device_))
                      .logits.float() for i in starts]
        logits = torch.cat(logits) if logits else torch.zeros((0, len(self.classes_)))
        return logits[torch.from_numpy(np.argsort(order, kind="stable"))]

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


# --- the run's texts: token ids, and the frozen layers' output ------------------------------------------------

@dataclass
class _Store:
    """The texts a run's models have seen: row per text, token ids per row and, with frozen layers, their
    output per row (`hidden[chunk][start:start + length]`). Shared by every clone with the same model folder,
    max_length and freeze_layers (the loop clones the model every round)."""

    rows_of: dict[str, int] = field(default_factory=dict)
    ids: list[NDArray[np.int64]] = field(default_factory=list)
    lengths: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    chunks: list[NDArray[np.float32]] = field(default_factory=list)
    where: list[tuple[int, int]] = field(default_factory=list)  # row -> (chunk, start)
    texts_hash: str = ""
    pad_id: int = 0
    tokenizer: object = None

    def reset(self, texts: list[str], est: TransformerClassifier) -> None:
        """Hold exactly the distinct `texts`, in sorted order: a run with another seed splits the same texts
        into another pool and test set, and finds them here (or in `cache_dir`) as they are."""
        distinct = sorted(set(texts))
        digest = _texts_hash(distinct)
        if digest == self.texts_hash:
            return
        self.rows_of, self.ids, self.chunks, self.where = {}, [], [], []
        self.lengths = np.zeros(0, dtype=np.int64)
        self._add(distinct, est, cache=digest)
        self.texts_hash = digest

    def rows(self, texts: list[str], est: TransformerClassifier) -> NDArray[np.intp]:
        new = [t for t in dict.fromkeys(texts) if t not in self.rows_of]
        if new:
            self._add(new, est)
        return np.fromiter((self.rows_of[t] for t in texts), dtype=np.intp, count=len(texts))

    def _add(self, texts: list[str], est: TransformerClassifier, cache: str | None = None) -> None:
        if self.tokenizer is None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(est._path())
            self.pad_id = self.tokenizer.pad_token_id or 0
        first = len(self.ids)
        ids = self.tokenizer(texts, truncation=True, max_length=est.max_length)["input_ids"]
        self.ids += [np.asarray(i, dtype=np.int64) for i in ids]
        self.lengths = np.concatenate([self.lengths, [len(i) for i in ids]]).astype(np.int64)
        self.rows_of.update({t: first + i for i, t in enumerate(texts)})
        if est.freeze_layers:
            rows = np.arange(first, len(self.ids))
            hidden = self._frozen_output(rows, est, cache)
            starts = np.concatenate([[0], np.cumsum(self.lengths[rows])[:-1]])
            self.where += [(len(self.chunks), int(s)) for s in starts]
            self.chunks.append(hidden)

    def _frozen_output(self, rows: NDArray, est: TransformerClassifier, cache: str | None) -> NDArray[np.float32]:
        """The frozen layers' output for `rows`, their tokens concatenated: loaded from `cache_dir` when a run
        on the same texts wrote it, else computed (and written there)."""
        path = None
        if cache and est.cache_dir:
            model = Path(est._path()).resolve()
            name = hashlib.sha256(f"{model}|{est.max_length}|{est.freeze_layers}|{cache}".encode()).hexdigest()
            path = Path(est.cache_dir) / f"frozen-{name[:24]}.npy"
        if path is None:
            return self._compute(rows, est)
        with _locked(path):
            if not path.is_file():
                hidden = self._compute(rows, est)
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.save(f, hidden)
                log.info("frozen layers' output cached at %s", path)
            return np.load(path, mmap_mode="r")

    def _compute(self, rows: NDArray, est: TransformerClassifier) -> NDArray[np.float32]:
        import torch
        from tqdm.auto import tqdm
        from transformers import AutoModel

        device = pick_device(est.device)
        with _quiet():
            base = AutoModel.from_pretrained(est._path())
        _encoder_parts(base, est.freeze_layers).encoder.layer = base.encoder.layer[:est.freeze_layers]
        base.to(device).eval()
        out = np.empty((int(self.lengths[rows].sum()), base.config.hidden_size), dtype=np.float32)
        starts = np.concatenate([[0], np.cumsum(self.lengths[rows])[:-1]])
        order = np.argsort(self.lengths[rows], kind="stable")
        with torch.inference_mode():
            for i in tqdm(range(0, len(rows), est.eval_batch_size), desc="frozen layers", unit="batch",
                          leave=False, disable=None if est.progress else True):
                part = order[i:i + est.eval_batch_size]
                batch = self._ids_batch(rows[part], device)
                hidden = base(**batch).last_hidden_state.float().cpu().numpy()
                for j, k in enumerate(part):
                    n = self.lengths[rows[k]]
                    out[starts[k]:starts[k] + n] = hidden[j, :n]
        return out

    def _ids_batch(self, rows: NDArray, device: str) -> dict:
        import torch

        width = int(self.lengths[rows].max())
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            ids[j, :self.lengths[r]] = self.ids[r]
            mask[j, :self.lengths[r]] = 1
        return {"input_ids": torch.from_numpy(ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}

    def batch(self, rows: NDArray, device: str) -> dict:
        """The model's inputs for `rows`, padded to the longest of them: token ids, or with frozen layers their
        output (`inputs_embeds`)."""
        import torch

        if not self.chunks:
            return self._ids_batch(rows, device)
        width = int(self.lengths[rows].max())
        hidden = np.zeros((len(rows), width, self.chunks[0].shape[1]), dtype=np.float32)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            (chunk, start), n = self.where[r], self.lengths[r]
            hidden[j, :n] = self.chunks[chunk][start:start + n]
            mask[j, :n] = 1
        return {"inputs_embeds": torch.from_numpy(hidden).to(device),
                "attention_mask": torch.from_numpy(mask).to(device)}


_STORES: dict[tuple, _Store] = {}


def _store(est: TransformerClassifier) -> _Store:
    """The store of this model folder, max_length and freeze_layers (the latest two kept in memory)."""
    if not isinstance(est.freeze_layers, int) or est.freeze_layers < 0:
        raise ValueError(f"freeze_layers must be a whole number >= 0 (0 fine-tunes every layer), "
                         f"got {est.freeze_layers!r}")
    key = (str(Path(est._path()).resolve()) if Path(est._path()).exists() else est._path(), est.max_length,
           est.freeze_layers, est.cache_dir if est.freeze_layers else None)
    if key not in _STORES:
        while len(_STORES) >= 2:
            _STORES.pop(next(iter(_STORES)))
        _STORES[key] = _Store()
    return _STORES[key]


@contextmanager
def _quiet():
    """transformers' load messages ("newly initialized classifier weights", "unexpected keys": expected here)
    and its loading bar (one every round says nothing) off while loading a model."""
    import transformers

    verbosity, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()


def _texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


def _passthrough():
    """A module that stands in for a model's embeddings: its input is already the frozen layers' output."""
    import torch

    class Passthrough(torch.nn.Module):
        def forward(self, input_ids=None, inputs_embeds=None, **_):
            return inputs_embeds

    return Passthrough()


def _first_token_last_layer(model, embeds: bool) -> None:
    """Compute the last encoder layer for the first token only: a BERT-style classifier reads nothing else of it
    (the pooler and RoBERTa's head take token 0), so its other positions are wasted work (5/6 of that layer's
    cost for 30-token texts). Exact: attention of token 0 over every token, then its feed-forward. Kept only if a
    check on a small random batch gives the same logits as the untouched model (otherwise left as it is)."""
    import types

    import torch

    layers = getattr(getattr(getattr(model, "base_model", None), "encoder", None), "layer", None)
    if not layers or not all(hasattr(layers[-1], a) for a in ("attention", "intermediate", "output")) \
            or not hasattr(layers[-1].attention, "self") or not hasattr(layers[-1].attention.self, "query"):
        return
    last = layers[-1]

    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        sa, (b, n, _) = self.attention.self, hidden_states.shape
        first = hidden_states[:, :1]
        d = sa.attention_head_size
        q = sa.query(first).view(b, 1, -1, d).transpose(1, 2)
        k = sa.key(hidden_states).view(b, n, -1, d).transpose(1, 2)
        v = sa.value(hidden_states).view(b, n, -1, d).transpose(1, 2)
        if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[2] == n:
            attention_mask = attention_mask[:, :, :1]
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask, dropout_p=sa.dropout.p if self.training else 0.0, scale=sa.scaling)
        attended = self.attention.output(out.transpose(1, 2).reshape(b, 1, -1), first)
        return self.output(self.intermediate(attended), attended)

    ids = torch.randint(5, model.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.tensor([[1] * 7, [1] * 4 + [0] * 3])}
    if embeds:  # the model takes the frozen layers' output, not token ids
        batch = {"inputs_embeds": torch.randn(2, 7, model.config.hidden_size, generator=torch.Generator()
                                              .manual_seed(0)), "attention_mask": batch["attention_mask"]}
    training = model.training
    model.eval()
    with torch.inference_mode():
        full = model(**batch).logits
        last.forward = types.MethodType(forward, last)
        try:
            same = torch.allclose(model(**batch).logits, full, atol=1e-5)
        except Exception:  # noqa: BLE001 - an architecture this does not fit: keep the full layer
            same = False
    if not same:
        del last.forward
    model.train(training)


def _encoder_parts(base, layers: int):
    """`base` (a BERT-style encoder: `embeddings` and `encoder.layer`), checked for `layers` frozen layers."""
    encoder = getattr(base, "encoder", None)
    if not hasattr(base, "embeddings") or not hasattr(encoder, "layer"):
        raise ValueError(f"freeze_layers needs a BERT-style encoder (embeddings + encoder.layer); "
                         f"{type(base).__name__} is not one: use freeze_layers=0")
    if layers > len(encoder.layer):
        raise ValueError(f"freeze_layers={layers} but the model has {len(encoder.layer)} layers")
    return base


def _texts(X) -> list[str]:
    """The inputs as a list of str; a clear error if they are features rather than texts."""
    X = X if hasattr(X, "toarray") else np.asarray(X, dtype=object)
    if X.ndim != 1 or (X.shape[0] and not isinstance(X[0], str)):
        raise ValueError("TransformerClassifier takes raw texts (a 1-d array of str); use features=identity "
                         "with a text dataset")
    return [str(t) for t in X]
