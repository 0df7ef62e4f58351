"""SentenceEmbedding on a tiny BERT built here (no downloads), plus one check of the packaged MiniLM."""

from pathlib import Path

import numpy as np
import pytest

from alexp.features import SentenceEmbedding

WORDS = ("the a cat dog sat on mat is sitting stock markets fell sharply today good bad day night red blue "
         "green runs fast slow house tree big small and or").split()
TEXTS = ["the cat sat on the mat", "a dog", "stock markets fell sharply today and the night was red",
         "good day", "blue", "the big house and a small tree", "unknownword runs fast", "green green green"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def build_tiny_bert(folder: Path, seed: int) -> str:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=37))
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", seed=0)


def encoder(model_path, cache_dir=None, **kwargs) -> SentenceEmbedding:
    return SentenceEmbedding(model_path=model_path, cache_dir=cache_dir, device="cpu", progress=False, **kwargs)


def test_embeddings_are_float32_unit_rows_of_hidden_size(tiny_model):
    X = encoder(tiny_model).transform(TEXTS)
    assert X.dtype == np.float32 and X.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(X[0], X[1])


def test_embeddings_do_not_depend_on_batch_size(tiny_model):
    small = encoder(tiny_model, batch_size=2).transform(TEXTS)
    large = encoder(tiny_model, batch_size=64).transform(TEXTS)
    np.testing.assert_allclose(small, large, atol=1e-5)


def test_embeddings_follow_the_input_order(tiny_model):
    perm = np.random.default_rng(0).permutation(len(TEXTS))
    base = encoder(tiny_model, batch_size=3).transform(TEXTS)
    shuffled = encoder(tiny_model, batch_size=3).transform([TEXTS[i] for i in perm])
    np.testing.assert_allclose(shuffled[np.argsort(perm)], base, atol=1e-5)


def test_second_call_loads_from_the_cache(tiny_model, tmp_path, monkeypatch):
    enc = encoder(tiny_model, cache_dir=str(tmp_path))
    first = enc.transform(TEXTS)
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def no_encoding(texts):
        raise AssertionError("encoder ran although the embeddings are cached")

    monkeypatch.setattr(enc, "_encode", no_encoding)
    np.testing.assert_array_equal(enc.transform(TEXTS), first)


def test_parallel_jobs_on_the_same_texts_encode_once(tiny_model, tmp_path, monkeypatch):
    import threading
    import time

    enc = encoder(tiny_model, cache_dir=str(tmp_path))
    calls, encode = [], enc._encode

    def slow_encode(texts):
        calls.append(len(texts))
        time.sleep(0.5)  # the other job asks meanwhile
        return encode(texts)

    monkeypatch.setattr(enc, "_encode", slow_encode)
    out = [None, None]
    jobs = [threading.Thread(target=lambda i=i: out.__setitem__(i, enc.transform(TEXTS))) for i in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert calls == [len(TEXTS)]
    np.testing.assert_array_equal(out[0], out[1])


def test_on_disk_embeddings_are_written_as_shards_once_and_read_back(tiny_model, tmp_path, monkeypatch):
    from alexp.shards import DiskArray

    enc = encoder(tiny_model, cache_dir=str(tmp_path), on_disk=True, window=4, batch_size=3)
    X = enc.transform(TEXTS)
    assert isinstance(X, DiskArray) and X.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.asarray(X), encoder(tiny_model).transform(TEXTS), atol=1e-5)

    def no_encoding(texts, model=None):
        raise AssertionError("encoder ran although the embeddings are on disk")

    monkeypatch.setattr(enc, "_encode", no_encoding)
    np.testing.assert_array_equal(np.asarray(enc.transform(TEXTS)), np.asarray(X))
    with pytest.raises(ValueError, match="set features.cache_dir"):
        encoder(tiny_model, on_disk=True).transform(TEXTS)
    with pytest.raises(ValueError, match="window must be a positive number of texts, got 0"):
        encoder(tiny_model, cache_dir=str(tmp_path), on_disk=True, window=0).transform(TEXTS)


def test_different_texts_get_a_different_cache_file(tiny_model, tmp_path):
    enc = encoder(tiny_model, cache_dir=str(tmp_path))
    enc.transform(TEXTS)
    sub = enc.transform(TEXTS[:3])
    assert len(list(tmp_path.glob("*.npy"))) == 2
    assert sub.shape == (3, 32)


def test_no_cache_dir_writes_nothing(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    encoder(tiny_model, cache_dir=None).transform(TEXTS)
    assert list(tmp_path.rglob("*")) == []


def test_cache_distinguishes_models_in_folders_with_the_same_name(tmp_path):
    # Two different models both saved in a folder called "model" (the packaged MiniLM's folder is also named
    # "model"): the cache must not hand one model's embeddings to the other.
    a = build_tiny_bert(tmp_path / "a" / "model", seed=0)
    b = build_tiny_bert(tmp_path / "b" / "model", seed=1)
    cache = str(tmp_path / "cache")
    Xa = encoder(a, cache_dir=cache).transform(TEXTS)
    Xb = encoder(b, cache_dir=cache).transform(TEXTS)
    np.testing.assert_allclose(Xb, encoder(b).transform(TEXTS), atol=1e-5)
    assert not np.allclose(Xa, Xb)


@pytest.mark.slow
def test_packaged_minilm_puts_similar_sentences_closer():
    texts = ["the cat sat on the mat", "a cat is sitting on a mat", "stock markets fell sharply today"]
    X = encoder(None, cache_dir=None).transform(texts)
    assert X.dtype == np.float32 and X.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert X[0] @ X[1] > X[0] @ X[2]
