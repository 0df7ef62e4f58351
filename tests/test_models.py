"""Torch models in the loop: the MC-dropout head, the transformer classifier and the zero-shot scout."""

import numpy as np
import pytest

from alexp.acquisition import Entropy
from alexp.budget import Budget
from alexp.loop import Loop
from alexp.models import MLPHead, TransformerClassifier, TunedThreshold, ZeroShot
from alexp.oracles import Perfect

from conftest import text_pool

FAST = {"epochs": 20, "batch_size": 8, "learning_rate": 3e-3}  # the tiny BERT learns the toy task, stably


@pytest.fixture(scope="module")
def texts():
    t, y = text_pool(300)
    return np.array(t, dtype=object), y


def test_mlp_head_learns_is_seeded_and_draws_consistent_dropout_samples(pool):
    a = MLPHead(epochs=30, random_state=0).fit(pool.X, pool.y)
    assert ((a.predict_proba(pool.X_test)[:, 1] > 0.5) == pool.y_test).mean() > 0.9
    b = MLPHead(epochs=30, random_state=0).fit(pool.X, pool.y)
    np.testing.assert_array_equal(a.predict_proba(pool.X_test), b.predict_proba(pool.X_test))
    s = a.sample_proba(pool.X_test, n_samples=7, rng=np.random.default_rng(1))
    assert s.shape == (7, len(pool.X_test), 2) and np.allclose(s.sum(axis=2), 1)
    assert s.std(axis=0).max() > 0  # dropout is on: the sampled networks differ
    # One sampled network per sample: scoring the rows in two blocks gives the same samples.
    halves = np.concatenate([a.sample_proba(pool.X_test[:50], 7, np.random.default_rng(1)),
                             a.sample_proba(pool.X_test[50:], 7, np.random.default_rng(1))], axis=1)
    np.testing.assert_allclose(halves, s, rtol=1e-6)
    no_dropout = MLPHead(epochs=5, dropout=0.0, random_state=0).fit(pool.X, pool.y)
    np.testing.assert_allclose(no_dropout.sample_proba(pool.X_test, 3)[2], no_dropout.predict_proba(pool.X_test),
                               rtol=1e-5)


def test_mlp_head_takes_sparse_features_and_balanced_class_weights(pool):
    from scipy import sparse

    X = sparse.csr_matrix(np.where(np.abs(pool.X) > 1, pool.X, 0))
    m = MLPHead(epochs=10, class_weight="balanced", random_state=0).fit(X, pool.y)
    assert m.predict_proba(X[:20]).shape == (20, 2)
    with pytest.raises(ValueError, match="class_weight must be null or balanced"):
        MLPHead(class_weight="heavy").fit(pool.X, pool.y)


@pytest.mark.parametrize("threads", [1, 2])
def test_transformer_fine_tunes_from_a_local_folder_and_is_seeded(tiny_transformer, texts, threads):
    """Fine-tuning learns the toy task: kappa on held-out texts at least 0.5 above the same model fitted with no
    epoch (the exact numbers move with the thread count and the CPU's kernels; a real gain does not), and two fits
    at one thread count are identical."""
    import torch
    from sklearn.metrics import cohen_kappa_score

    X, y = texts
    fit = {**FAST, "epochs": 10}  # the toy task is learned in 10 (kappa 1.0 at 1 and at 2 threads here)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = TransformerClassifier(tiny_transformer, random_state=0, **fit).fit(X[:100], y[:100])
        proba = a.predict_proba(X[100:])
        b = TransformerClassifier(tiny_transformer, random_state=0, **fit).fit(X[:100], y[:100])
        np.testing.assert_array_equal(proba, b.predict_proba(X[100:]))
        untrained = TransformerClassifier(tiny_transformer, random_state=0, **{**fit, "epochs": 0})
        baseline = untrained.fit(X[:100], y[:100]).predict_proba(X[100:])
    finally:
        torch.set_num_threads(before)
    assert proba.shape == (200, 2)
    gain = cohen_kappa_score(y[100:], proba.argmax(1)) - cohen_kappa_score(y[100:], baseline.argmax(1))
    assert gain >= 0.5, f"fine-tuning gained {gain:.3f} kappa over the untrained model"
    s = a.sample_proba(X[:10], n_samples=3, rng=np.random.default_rng(0))
    assert s.shape == (3, 10, 2) and s.std(axis=0).max() > 0
    with pytest.raises(ValueError, match="raw texts"):
        a.predict_proba(np.zeros((3, 4)))


def test_transformer_warm_start_continues_from_the_last_fit(tiny_transformer, texts):
    X, y = texts
    cold = TransformerClassifier(tiny_transformer, random_state=0, epochs=1, batch_size=8, learning_rate=1e-2)
    warm = TransformerClassifier(tiny_transformer, random_state=0, epochs=1, batch_size=8, learning_rate=1e-2,
                                 warm_start=True)
    fits = {}
    for name, m in (("cold", cold), ("warm", warm)):
        fits[name] = [m.fit(X[:40], y[:40]).predict_proba(X[100:]) for _ in range(2)]
    np.testing.assert_array_equal(fits["cold"][0], fits["cold"][1])  # cold: every fit restarts from the same weights
    np.testing.assert_array_equal(fits["warm"][0], fits["cold"][0])  # the first warm fit is a cold one
    assert not np.allclose(fits["warm"][1], fits["cold"][1])  # then it trains on top of the last fit


def naive_proba(model, tokenizer, texts, max_length, batch_size=7):
    """The plain Hugging Face loop: input order, every batch padded to max_length, no cache."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[i:i + batch_size]), padding="max_length", truncation=True,
                              max_length=max_length, return_tensors="pt")
            out.append(torch.softmax(model(**batch).logits, dim=1).numpy())
    return np.concatenate(out)


@pytest.fixture(scope="module")
def ragged():
    """Texts of 1 to 24 words (some longer than max_length=16 tokens), shuffled lengths."""
    from conftest import WORDS

    rng = np.random.default_rng(3)
    return np.array([" ".join(rng.choice(WORDS, rng.integers(1, 25))) for _ in range(90)], dtype=object)


def test_sorted_dynamically_padded_batches_score_like_the_naive_loop(tiny_transformer, texts, ragged):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    X, y = texts
    m = TransformerClassifier(tiny_transformer, random_state=0, max_length=16, eval_batch_size=16,
                              **FAST).fit(X[:60], y[:60])
    assert "forward" in vars(m.model_.base_model.encoder.layer[-1])  # the last layer runs for token 0 only
    plain = AutoModelForSequenceClassification.from_pretrained(tiny_transformer)  # every layer as transformers has it
    plain.load_state_dict(m.model_.state_dict())
    naive = naive_proba(plain, AutoTokenizer.from_pretrained(tiny_transformer), ragged, 16)
    np.testing.assert_allclose(m.predict_proba(ragged), naive, atol=1e-5)
    assert np.abs(naive[:, 1] - 0.5).max() > 0.1  # the check compares scores, not a constant


def test_frozen_layers_score_like_the_whole_model_with_its_lower_layers_pretrained(tiny_transformer, texts, ragged):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    X, y = texts
    m = TransformerClassifier(tiny_transformer, random_state=0, max_length=16, freeze_layers=1,
                              **FAST).fit(X[:60], y[:60])
    assert len(m.model_.base_model.encoder.layer) == 1  # only the top layer is trained and run
    # the whole model: pretrained embeddings and layer 0, the fitted layer 1, pooler and head
    whole = AutoModelForSequenceClassification.from_pretrained(tiny_transformer)
    fitted = {k.replace("encoder.layer.0.", "encoder.layer.1."): v for k, v in m.model_.state_dict().items()}
    missing, unexpected = whole.load_state_dict(fitted, strict=False)
    assert not unexpected and all(".embeddings." in k or ".layer.0." in k for k in missing)
    naive = naive_proba(whole, AutoTokenizer.from_pretrained(tiny_transformer), ragged, 16)
    np.testing.assert_allclose(m.predict_proba(ragged), naive, atol=1e-5)
    with pytest.raises(ValueError, match="freeze_layers=3 but the model has 2 layers"):
        TransformerClassifier(tiny_transformer, freeze_layers=3).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="freeze_layers must be a whole number"):
        TransformerClassifier(tiny_transformer, freeze_layers=-1).fit(X[:20], y[:20])


def test_a_resumed_run_with_cached_frozen_layers_ends_as_an_uninterrupted_one(tiny_transformer, texts, tmp_path):
    from alexp.models import transformer

    X, y = texts

    def make():  # a fresh model object and an empty memory, as a new process would have
        transformer._STORES.clear()
        return TransformerClassifier(tiny_transformer, random_state=0, freeze_layers=1,
                                     cache_dir=str(tmp_path / "cache"), **FAST)

    whole = loop(X, y, make(), Budget(initial=10, batch_size=10, rounds=3)).run()
    (cached,) = (tmp_path / "cache").glob("frozen-*.npy")  # the frozen layer's output, written by the first run
    part = loop(X, y, make(), Budget(initial=10, batch_size=10, rounds=1), checkpoint=tmp_path / "s.npz").run()
    part.finished = False
    resumed = loop(X, y, make(), Budget(initial=10, batch_size=10, rounds=3)).run(part)
    np.testing.assert_array_equal(resumed.labeled_in, whole.labeled_in)
    assert [h["kappa"] for h in resumed.history] == [h["kappa"] for h in whole.history]
    assert [h["kappa"] for h in whole.history][-1] > 0.3  # it learned: the comparison is not of constants
    assert list((tmp_path / "cache").glob("frozen-*.npy")) == [cached]  # loaded, not written again
    make().prepare(np.concatenate([X[250:], X[:250]]))  # another seed's split of the same texts: the same file
    assert list((tmp_path / "cache").glob("frozen-*.npy")) == [cached]


def test_zero_shot_scores_by_cosine_to_the_class_descriptions():
    class Lookup:  # a fake sentence model: fixed vectors per text
        vectors = {"neutral news": [1.0, 0.0], "bait": [0.0, 1.0]}

        def transform(self, texts):
            return np.array([self.vectors[t] for t in texts])

    scout = ZeroShot(["neutral news", "bait"], temperature=0.5, features=Lookup())
    X = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    expected = np.exp(np.array([[1, 0], [2**-0.5, 2**-0.5], [0, 1]]) / 0.5)
    np.testing.assert_allclose(scout.predict_proba(X), expected / expected.sum(axis=1, keepdims=True))
    with pytest.raises(ValueError, match="one per class"):
        ZeroShot(["only one"])
    with pytest.raises(ValueError, match="one description per class"):  # an unquoted comma split one in two
        ZeroShot(["not hateful", "hateful to race", "religion"], classes=[0, 1])


def test_zero_shot_with_the_packaged_sentence_model_reads_obvious_texts():
    scout = ZeroShot(["a text about sports", "a text about cooking"])
    proba = scout.predict_proba(np.array(["the striker scored twice in the final match",
                                          "simmer the onions in butter and add the garlic"], dtype=object))
    assert proba.argmax(axis=1).tolist() == [0, 1]


def loop(X, y, model, budget, scout=None, checkpoint=None):
    return Loop(X[:200], X[200:], y[200:], model, Entropy(), Perfect(y[:200]), budget, seed=0, truth=y[:200],
                progress=False, scout=scout, checkpoint=checkpoint)


def test_a_cold_start_asks_the_scout_for_round_zero_and_logs_it_at_zero_labels(texts):
    X, y = texts

    class KeywordScout:  # stands in for a zero-shot model: knows some of the negative words
        classes_ = np.array([0, 1])

        def predict_proba(self, X):
            p = np.array([0.9 if ("bad" in t or "awful" in t) else 0.2 for t in X])
            return np.stack([1 - p, p], axis=1)

    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(), LogisticRegression())
    state = loop(X, y, model, Budget(initial=0, batch_size=10, rounds=2), scout=KeywordScout()).run()
    assert [h["n_labels"] for h in state.history] == [0, 10, 20, 30]
    first = np.flatnonzero(state.labeled_in == 0)
    # Round 0 is entropy on the scout's scores: H(0.2) > H(0.9), so it takes rows the scout gives 0.2.
    assert all("bad" not in t and "awful" not in t for t in X[first])
    with pytest.raises(ValueError, match="scout=zero_shot"):
        loop(X, y, model, Budget(initial=0, batch_size=10, rounds=1)).run()


def test_a_resumed_warm_start_run_replays_its_fits_and_ends_as_an_uninterrupted_one(tiny_transformer, texts,
                                                                                   tmp_path):
    X, y = texts
    def make():  # a fresh model object, as a new process would build
        return TransformerClassifier(tiny_transformer, random_state=0, warm_start=True, epochs=2, batch_size=8,
                                     learning_rate=1e-2)

    whole = loop(X, y, make(), Budget(initial=10, batch_size=10, rounds=3)).run()
    part = loop(X, y, make(), Budget(initial=10, batch_size=10, rounds=1), checkpoint=tmp_path / "s.npz").run()
    part.finished = False
    resumed = loop(X, y, make(), Budget(initial=10, batch_size=10, rounds=3)).run(part)
    np.testing.assert_array_equal(resumed.labeled_in, whole.labeled_in)
    assert [h["kappa"] for h in resumed.history] == [h["kappa"] for h in whole.history]


# --- the same through the command line ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text_csv(tmp_path_factory):
    import polars as pl

    t, y = text_pool(300, seed=1)
    path = tmp_path_factory.mktemp("texts") / "reviews.csv"
    pl.DataFrame({"text": t, "label": y}).write_csv(path)
    return str(path)


def text_data(path):
    return ["data=file", f"data.path={path}", "data.text_column=text", "data.label_column=label", "progress=false",
            "budget.initial=10", "budget.batch_size=10", "budget.rounds=2"]


@pytest.mark.slow
def test_alexp_fine_tunes_a_transformer_for_three_rounds(alexp, tiny_transformer, text_csv, tmp_path):
    from conftest import runs

    out = alexp(*text_data(text_csv), "model=transformer", f"model.name_or_path={tiny_transformer}",
                "model.epochs=20", "model.batch_size=8", "model.learning_rate=0.01", cwd=tmp_path).stdout
    assert "kappa by label count" in out
    client, _, (run,) = runs(tmp_path)
    kappa = client.get_metric_history(run.info.run_id, "kappa")
    assert [m.step for m in kappa] == [10, 20, 30] and kappa[-1].value > 0.5
    assert run.data.params["model"] == "transformer"


@pytest.mark.slow
def test_a_cold_start_from_the_zero_shot_scout_logs_kappa_at_zero_labels(alexp, text_csv, tmp_path):
    from conftest import runs

    alexp(*text_data(text_csv), "features=minilm", "scout=zero_shot", "budget.initial=0", "budget.stratified=false",
          "data.descriptions=[a short text with a good or great word,a short text with a bad or awful word]",
          cwd=tmp_path)
    client, _, (run,) = runs(tmp_path)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "kappa")] == [0, 10, 20, 30]
    assert run.data.params["scout"] == "zero_shot"


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["model=transformer"], "reads raw texts and the data is numeric"),
    (["model=logreg", "acquisition=bald"], "Bald needs posterior samples, and LogisticRegression draws none"),
    (["budget.initial=0"], "initial=0 starts from a scout's predictions; add scout=zero_shot"),
    (["scout=zero_shot"], "descriptions must describe each class in words"),
])
def test_models_that_cannot_run_a_config_say_so_before_any_work(alexp, args, message, tmp_path):

    proc = alexp(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_text_model_refuses_strategies_that_compare_feature_vectors(alexp, text_csv, tmp_path):

    proc = alexp(*text_data(text_csv), "model=transformer", "acquisition=coreset", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Coreset compares feature vectors" in proc.stderr, proc.stderr


def test_a_committee_of_transformers_votes_on_raw_texts(tiny_transformer, texts):
    from alexp.acquisition import VoteEntropy

    X, y = texts
    model = TransformerClassifier(tiny_transformer, random_state=0, warm_start=True, **FAST)
    run = Loop(X[:200], X[200:], y[200:], model, VoteEntropy(n_members=3), Perfect(y[:200]),
               Budget(initial=20, batch_size=10, rounds=1), seed=0, truth=y[:200], progress=False)
    state = run.run()
    assert [h["n_labels"] for h in state.history] == [20, 30]
    # The members are clones: the warm-started run model was fitted once per round, never on a bootstrap bag.
    from alexp.seeds import stream_int

    reference = TransformerClassifier(tiny_transformer, random_state=stream_int(0, "model"), warm_start=True, **FAST)
    for r in (0, 1):
        rows = np.flatnonzero((state.labeled_in >= 0) & (state.labeled_in <= r))
        reference.fit(X[rows], state.labels[rows])
    np.testing.assert_array_equal(reference.predict_proba(X[200:]), run.model.predict_proba(X[200:]))


def test_zero_shot_through_a_transformers_nli_pipeline_maps_scores_back_to_classes(tmp_path):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast, pipeline

    from conftest import WORDS

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "example"])}
    BertTokenizerFast(vocab=vocab).save_pretrained(tmp_path)
    torch.manual_seed(0)
    labels = {0: "contradiction", 1: "neutral", 2: "entailment"}  # what the pipeline looks for
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, id2label=labels, label2id={v: k for k, v in labels.items()})
    BertForSequenceClassification(config).save_pretrained(tmp_path)

    texts = np.array(["this movie was good", "the plot was awful", "a nice film"], dtype=object)
    scout = ZeroShot(["good", "bad"], pipeline=str(tmp_path), device="cpu")
    proba = scout.predict_proba(texts)
    assert proba.shape == (3, 2) and np.allclose(proba.sum(axis=1), 1)
    reference = pipeline("zero-shot-classification", model=str(tmp_path), device=-1)
    for row, text in zip(proba, texts):
        out = reference(text, candidate_labels=["good", "bad"], hypothesis_template="This example is {}.")
        np.testing.assert_allclose(row, [dict(zip(out["labels"], out["scores"]))[c] for c in ("good", "bad")],
                                   rtol=1e-5)
    with pytest.raises(ValueError, match="reads raw texts"):
        scout.predict_proba(np.zeros((2, 3)))


def test_tuned_threshold_maximises_out_of_fold_kappa_on_the_labels_only():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import cohen_kappa_score

    X, y = make_classification(3000, n_features=10, weights=[0.95], flip_y=0.05, random_state=2)
    train, test = slice(0, 1500), slice(1500, None)
    plain = LogisticRegression(class_weight="balanced", max_iter=1000).fit(X[train], y[train])
    tuned = TunedThreshold(LogisticRegression(class_weight="balanced", max_iter=1000), random_state=0)
    tuned.fit(X[train], y[train])
    assert 0.5 < tuned.threshold_ < 1  # balanced weights over-predict the rare class; tuning pulls it back
    assert cohen_kappa_score(y[test], tuned.predict(X[test])) > cohen_kappa_score(y[test], plain.predict(X[test]))
    np.testing.assert_array_equal(tuned.predict_proba(X[test]), plain.predict_proba(X[test]))  # same ranking
    one = TunedThreshold(LogisticRegression()).fit(X[:30], np.r_[1, np.zeros(29, dtype=int)])
    assert one.threshold_ == 0.5  # a single positive: nothing to tune on


def test_threshold_kappas_equal_scikit_learns_kappa_at_every_threshold():
    from sklearn.metrics import cohen_kappa_score

    from alexp.models.threshold import threshold_kappas

    rng = np.random.default_rng(0)
    for _ in range(30):  # sklearn's kappa costs ~1.6 ms a threshold: 30 random cases with ties, ~1,800 thresholds
        n = int(rng.integers(5, 300))
        y = (rng.random(n) < rng.uniform(0.02, 0.6)).astype(int)
        y[0] = 1
        p = np.round(rng.random(n) * y * 0.5 + rng.random(n) * 0.7, int(rng.integers(1, 4)))  # ties included
        grid = np.unique(np.quantile(p, np.linspace(0, 1, 100)))
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = [cohen_kappa_score(y, (p >= t).astype(int)) for t in grid]
        np.testing.assert_array_equal(threshold_kappas(y, p, grid), expected)  # same floats, NaN where undefined
