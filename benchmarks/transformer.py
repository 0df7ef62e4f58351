"""Transformer round benchmark: one active-learning round with all-MiniLM-L6-v2 on this machine's cores.

A round is: fine-tune on 400 labeled pool texts, half of them positive (3 epochs, batch 16, AdamW 5e-5, balanced
class weights), score the whole pool, score the gold test set. Two pools: Davidson tweets (19,826 pool, 4,957
test; 30 tokens on average) and the pooled Cohen drug-review abstracts (12,193 pool; 87% cut at 128 tokens).
Each round is run by

    naive        a plain Hugging Face loop as its tutorials write it: texts padded to max_length (128), in input
                 order, tokenized every batch, under torch.no_grad
    small-text   small-text's TransformerBasedClassification (the peer; its own environment, see below), same
                 model folder, epochs, batch size and learning rate
    alexp        TransformerClassifier: tokenized once per run, batches sorted by token count and padded to their
                 longest text, torch.inference_mode
    alexp-freezeN  the same with the embeddings and lower N layers frozen: their output is computed once per run
                 (`once` column: tokenizing, and the frozen layers over pool and test) and each round trains and
                 runs only the 6 - N layers above

Printed per pool: seconds for fit, pool, test and the round (naive and small-text score a random sample of
--sample pool texts; their pool seconds are scaled to the whole pool); pool texts/s; the pool speed-up over
naive; kappa of the test predictions against the gold labels with a 95% bootstrap interval over test rows (one seed: the
interval is for the test sample, not for seeds). Agreement: naive's fitted model scored by alexp's batching
(same weights, so identical predictions are expected: max |p - p'|, predictions that differ).

    python benchmarks/transformer.py                                   # both pools (~25 min on 2 cores)
    python benchmarks/transformer.py --pools davidson --skip naive     # a subset
    python benchmarks/transformer.py --small-text-python /tmp/st/bin/python
    python benchmarks/transformer.py --skip naive --freeze --onnx      # + ONNX Runtime int8 (~20 min)
    python benchmarks/transformer.py --seeds 5 --small-text-python /tmp/st/bin/python   # kappa (~60 min)

--onnx exports alexp's fitted model to ONNX, quantizes its weights to int8 (ONNX Runtime's dynamic quantization,
per channel, reduced range as its docs advise for CPUs without VNNI) and scores pool and test with ONNX Runtime
through the same batches; it prints the speed-up and the agreement with the torch path (the 100 most uncertain
pool texts both pick, kappa between their predictions) and checks the fp32 export against torch. It needs
`pip install onnxruntime onnx`, which alexp does not depend on. --seeds replaces the timing with kappa over
seeds (each seed draws its own 400 labels, initial weights and batch order) for alexp and small-text, and the
paired difference with a 95% t-interval.

small-text 1.4.1 pins torchtext for its transformers extra, which would replace this torch with another build:
install it without dependencies in a venv that sees this environment's packages:
    python -m venv --system-site-packages /tmp/st && /tmp/st/bin/pip install --no-deps small-text==1.4.1 dill
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LABELS = 400
FIT = {"epochs": 3, "batch_size": 16, "learning_rate": 5e-5, "max_length": 128, "class_weight": "balanced"}
POOLS = {"davidson": ["data=davidson_hate"], "cohen": ["data=cohen_reviews"]}


def load(overrides: list[str], seed: int = 0):
    """(texts, labels, pool rows, test rows) of a pool, split as an alexp run of that seed splits it."""
    from alexp import runner

    table, pool_rows, test_rows = runner.split(runner.compose([*overrides, f"seed={seed}"]))
    return np.asarray(table.inputs, dtype=object), np.asarray(table.y), pool_rows, test_rows


def labeled(y, pool_rows, seed: int):
    """400 pool rows, half of them positive (as an active learner's labels tend to be on rare positives)."""
    rng = np.random.default_rng(seed)
    pos, neg = pool_rows[y[pool_rows] == 1], pool_rows[y[pool_rows] == 0]
    return rng.permutation(np.concatenate([rng.choice(pos, LABELS // 2, replace=False),
                                           rng.choice(neg, LABELS // 2, replace=False)]))


def kappa_text(y, proba) -> str:
    from sklearn.metrics import cohen_kappa_score

    pred = proba.argmax(axis=1)
    rng = np.random.default_rng(0)
    boot = [cohen_kappa_score(y[i], pred[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(200))]
    return f"{cohen_kappa_score(y, pred):.3f} [{np.percentile(boot, 2.5):.3f}, {np.percentile(boot, 97.5):.3f}]"


def naive(path: str, train, y, pool, test) -> dict:
    """Fine-tune and score as a plain Hugging Face loop does: pad to max_length, input order, no cache."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    weight = torch.tensor(len(y) / (2 * np.bincount(y, minlength=2)), dtype=torch.float32)  # balanced

    def encode(texts):
        return tok(list(texts), padding="max_length", truncation=True, max_length=FIT["max_length"],
                   return_tensors="pt")

    started = time.perf_counter()
    opt = torch.optim.AdamW(model.parameters(), lr=FIT["learning_rate"], weight_decay=0.01)
    steps = FIT["epochs"] * -(-len(train) // FIT["batch_size"])
    schedule = get_linear_schedule_with_warmup(opt, int(0.1 * steps), steps)
    model.train()
    for _ in range(FIT["epochs"]):
        order = torch.randperm(len(train)).numpy()
        for i in range(0, len(order), FIT["batch_size"]):
            rows = order[i:i + FIT["batch_size"]]
            loss = torch.nn.functional.cross_entropy(model(**encode(train[rows])).logits,
                                                     torch.from_numpy(y[rows].astype(np.int64)), weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    fit = time.perf_counter() - started
    model.eval()

    def score(texts):
        with torch.no_grad():
            return np.concatenate([torch.softmax(model(**encode(texts[i:i + 128])).logits, 1).numpy()
                                   for i in range(0, len(texts), 128)])

    out = {"fit": fit}
    for name, texts in (("pool", pool), ("test", test)):
        started = time.perf_counter()
        out[f"{name}_proba"] = score(texts)
        out[name] = time.perf_counter() - started
    out["model"] = model
    return out


def alexp_round(path: str, train, y, pool, test, freeze: int, cache: str | None, seed: int = 0) -> dict:
    from alexp.models import TransformerClassifier, transformer

    transformer._STORES.clear()  # a new run: nothing tokenized yet
    est = TransformerClassifier(path, freeze_layers=freeze, cache_dir=cache, random_state=seed, device="cpu", **FIT)
    started = time.perf_counter()
    est.prepare(np.concatenate([pool, test]))
    out = {"once": time.perf_counter() - started}
    started = time.perf_counter()
    est.fit(train, y)
    out["fit"] = time.perf_counter() - started
    for name, texts in (("pool", pool), ("test", test)):
        started = time.perf_counter()
        out[f"{name}_proba"] = est.predict_proba(texts)
        out[name] = time.perf_counter() - started
    out["est"] = est
    return out


def onnx_int8(est, pool, test) -> dict:
    """alexp's fitted model exported to ONNX with its weights quantized to int8 (dynamic quantization), scored by
    ONNX Runtime through alexp's batches (sorted by token count, dynamic padding). `export`: export + quantize, a
    cost every round pays (the model changes every round)."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from alexp.models.transformer import _store

    store = _store(est)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        example = store.batch(est._rows(list(test[:8])), "cpu")
        torch.onnx.export(est.model_, (example["input_ids"], example["attention_mask"]), f"{tmp}/fp32.onnx",
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"}, "logits": {0: "batch"}},
                          dynamo=False)
        quantize_dynamic(f"{tmp}/fp32.onnx", f"{tmp}/int8.onnx", weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)  # ONNX Runtime's advice for CPUs without VNNI (this one: AVX2)
        out["export"] = time.perf_counter() - started
        sessions = {}
        for kind in ("fp32", "int8"):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
            sessions[kind] = ort.InferenceSession(f"{tmp}/{kind}.onnx", options, providers=["CPUExecutionProvider"])

    def score(session, texts):
        rows = est._rows(list(texts))
        order = np.argsort(store.lengths[rows], kind="stable")
        logits = np.zeros((len(rows), len(est.classes_)), dtype=np.float32)
        for i in range(0, len(rows), est.eval_batch_size):
            batch = store.batch(rows[order[i:i + est.eval_batch_size]], "cpu")
            logits[order[i:i + est.eval_batch_size]] = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    out["export_check"] = score(sessions["fp32"], test[:500])  # the fp32 export must match torch
    for name, texts in (("pool", pool), ("test", test)):
        started = time.perf_counter()
        out[f"{name}_proba"] = score(sessions["int8"], texts)
        out[name] = time.perf_counter() - started
    return out


def top_agreement(p, q, k: int = 100) -> float:
    """Share of the k most uncertain texts (probability nearest 0.5) that p and q both pick."""
    top = [set(np.argsort(np.abs(x[:, 1] - 0.5), kind="stable")[:k]) for x in (p, q)]
    return len(top[0] & top[1]) / k


def small_text(python: str, path: str, train, y, pool, test, seed: int = 0) -> dict:
    """small-text's round, in its own interpreter (this file's --child mode); inputs and outputs via files."""
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", train=train.astype(str), y=y, pool=pool.astype(str), test=test.astype(str))
        subprocess.run([python, __file__, "--child", tmp, "--model", path, "--seed", str(seed)], check=True)
        out = json.loads((Path(tmp) / "out.json").read_text())
        probas = np.load(Path(tmp) / "out.npz")
        return {**out, "pool_proba": probas["pool"], "test_proba": probas["test"]}


def child(folder: str, path: str, seed: int) -> None:
    import torch
    from small_text import TransformerBasedClassification, TransformerModelArguments
    from small_text.integrations.transformers.datasets import TransformersDataset
    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    d = np.load(Path(folder) / "in.npz")
    tok = AutoTokenizer.from_pretrained(path)
    labels = np.arange(2)

    def dataset(texts, y=None):
        return TransformersDataset.from_arrays(list(texts), np.zeros(len(texts), int) if y is None else y, tok,
                                               target_labels=labels, max_length=FIT["max_length"])

    clf = TransformerBasedClassification(TransformerModelArguments(path), num_classes=2, num_epochs=FIT["epochs"],
                                         lr=FIT["learning_rate"], mini_batch_size=FIT["batch_size"],
                                         class_weight=FIT["class_weight"], device="cpu")
    out, probas = {}, {}
    started = time.perf_counter()
    clf.fit(dataset(d["train"], d["y"]))
    out["fit"] = time.perf_counter() - started
    for name in ("pool", "test"):
        started = time.perf_counter()
        probas[name] = clf.predict_proba(dataset(d[name])) if len(d[name]) else np.zeros((0, 2))
        out[name] = time.perf_counter() - started
    np.savez(Path(folder) / "out.npz", **probas)
    (Path(folder) / "out.json").write_text(json.dumps(out))


def seed_kappas(args, path: str, name: str) -> None:
    """Kappa of alexp and small-text over seeds: each seed draws its own 400 labels and sets the initial weights
    and batch order; both score the same test set (the pool is not scored: kappa does not need it)."""
    from scipy import stats
    from sklearn.metrics import cohen_kappa_score

    texts, y_all, pool_rows, test_rows = load(POOLS[name])
    test, y_test = texts[test_rows], y_all[test_rows]
    kappas, seconds = {"small-text": [], "alexp": []}, {"small-text": [], "alexp": []}
    for seed in range(args.seeds):
        train = labeled(y_all, pool_rows, seed)
        runs = {"small-text": small_text(args.small_text_python, path, texts[train], y_all[train], test[:0], test,
                                         seed),
                "alexp": alexp_round(path, texts[train], y_all[train], test[:0], test, 0, None, seed)}
        for setting, r in runs.items():
            kappas[setting].append(cohen_kappa_score(y_test, r["test_proba"].argmax(axis=1)))
            seconds[setting].append(r["fit"] + r["test"])
        print(f"  seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in kappas.items()), flush=True)
    print(f"\n{name}: test-set kappa over seeds 0-{args.seeds - 1} ({len(test):,} test texts)\n"
          f"| setting | {' | '.join(f'seed {i}' for i in range(args.seeds))} | mean | seeds' range | fit + test s |\n"
          f"|---|{'---|' * args.seeds}---|---|---|")
    for setting, k in kappas.items():
        print(f"| {setting} | {' | '.join(f'{v:.3f}' for v in k)} | {np.mean(k):.3f} | "
              f"[{min(k):.3f}, {max(k):.3f}] | {np.mean(seconds[setting]):.0f} |")
    diff = np.subtract(kappas["alexp"], kappas["small-text"])
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    inside = min(kappas["small-text"]) <= np.mean(kappas["alexp"]) <= max(kappas["small-text"])
    print(f"alexp - small-text, paired by seed: {diff.mean():+.3f} [{diff.mean() - half:+.3f}, "
          f"{diff.mean() + half:+.3f}] (95% t-interval); alexp's mean kappa is "
          f"{'inside' if inside else 'outside'} small-text's seeds' range; alexp's fit + test "
          f"{np.mean(seconds['small-text']) / np.mean(seconds['alexp']):.1f}x faster", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pools", nargs="+", default=list(POOLS), choices=list(POOLS))
    p.add_argument("--freeze", nargs="*", type=int, default=[4, 5], help="frozen layer counts to measure")
    p.add_argument("--skip", nargs="*", default=[], choices=["naive", "small-text"])
    p.add_argument("--small-text-python", default=os.environ.get("SMALL_TEXT_PYTHON"),
                   help="the interpreter of an environment with small-text (see above); unset: not measured")
    p.add_argument("--sample", type=int, default=2000, help="pool texts the baselines score (their pool time "
                   "is scaled to the whole pool; default 2000)")
    p.add_argument("--limit", type=int, help="score only the first N pool and test texts (a quick check)")
    p.add_argument("--onnx", action="store_true", help="also score with ONNX Runtime, int8 weights (needs "
                   "onnxruntime and onnx; not an alexp dependency): speed and agreement with alexp's torch path")
    p.add_argument("--seeds", type=int, help="instead of timing a round: kappa of alexp and small-text over this "
                   "many seeds (needs --small-text-python)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.model, args.seed)
    if args.seeds is not None and (args.seeds < 2 or not args.small_text_python):
        p.error("--seeds needs at least 2 seeds and --small-text-python")
    if args.seeds is not None and (args.onnx or args.limit):
        p.error("--seeds compares kappa on the whole test set: drop --onnx and --limit (they time a round)")
    if args.onnx and not all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx")):
        p.error("--onnx needs ONNX Runtime: pip install onnxruntime onnx")

    import torch
    from sklearn.metrics import cohen_kappa_score

    from alexp.features import default_model_path
    from alexp.models import TransformerClassifier

    torch.set_num_threads(os.cpu_count())
    path = default_model_path()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; model all-MiniLM-L6-v2; {LABELS} labels, {FIT}", flush=True)
    for name in args.pools:
        if args.seeds:
            seed_kappas(args, path, name)
            continue
        texts, y_all, pool_rows, test_rows = load(POOLS[name])
        train = labeled(y_all, pool_rows, 0)
        train, y, pool, test, y_test = texts[train], y_all[train], texts[pool_rows], texts[test_rows], y_all[test_rows]
        if args.limit:
            pool, test, y_test = pool[:args.limit], test[:args.limit], y_test[:args.limit]
        print(f"\n{name}: pool {len(pool):,} texts, test {len(test):,}, labeled {len(train)} "
              f"({int(y.sum())} positive)", flush=True)
        rows = {}
        # the baselines score a random sample of the pool; their pool seconds are scaled to the whole pool
        sample = pool[np.sort(np.random.default_rng(1).choice(len(pool), min(args.sample, len(pool)), replace=False))]
        if "naive" not in args.skip:
            rows["naive"] = naive(path, train, y, sample, test)
        if "small-text" not in args.skip and args.small_text_python:
            rows["small-text"] = small_text(args.small_text_python, path, train, y, sample, test)
        for r in rows.values():
            r["pool"] *= len(pool) / len(sample)
        with tempfile.TemporaryDirectory() as cache:
            for freeze in [0, *args.freeze]:
                rows["alexp" if not freeze else f"alexp-freeze{freeze}"] = alexp_round(path, train, y, pool, test,
                                                                                      freeze, cache)
                if not freeze and args.onnx:
                    onnx = onnx_int8(rows["alexp"]["est"], pool, test)  # its fit: alexp's, then the export
                    rows["alexp-onnx-int8"] = {**onnx, "fit": rows["alexp"]["fit"] + onnx["export"]}
        base = rows.get("naive", {}).get("pool")
        print("| setting | once s | fit s | pool s | test s | round s | pool texts/s | pool vs naive | "
              "kappa (test) |\n|---|---|---|---|---|---|---|---|---|")
        for setting, r in rows.items():
            round_s = r["fit"] + r["pool"] + r["test"]
            speed = f"{base / r['pool']:.1f}x" if base else "–"
            once = f"{r['once']:.1f}" if "once" in r else "–"
            print(f"| {setting} | {once} | {r['fit']:.1f} | {r['pool']:.1f} | {r['test']:.1f} | {round_s:.1f} | "
                  f"{len(pool) / r['pool']:,.0f} | {speed} | {kappa_text(y_test, r['test_proba'])} |", flush=True)
        if "naive" in rows:  # the same weights through alexp's batching: the predictions must not change
            est = TransformerClassifier(path, random_state=0, device="cpu", **FIT)
            est.model_, est.classes_, est.device_ = rows["naive"]["model"], np.array([0, 1]), "cpu"
            mine = est.predict_proba(sample)
            ref = rows["naive"]["pool_proba"]
            print(f"naive's model scored by alexp's batching: max |p - p'| {np.abs(mine - ref).max():.2e}, "
                  f"{int((mine.argmax(1) != ref.argmax(1)).sum())} of {len(sample):,} predictions differ", flush=True)
        if "alexp-onnx-int8" in rows:
            full, q = rows["alexp"], rows["alexp-onnx-int8"]
            check = np.abs(q["export_check"] - full["test_proba"][:len(q["export_check"])]).max()
            print(f"onnx int8 vs alexp's torch path: top-100 most uncertain pool texts agree "
                  f"{top_agreement(full['pool_proba'], q['pool_proba']):.0%}; pool predictions: kappa "
                  f"{cohen_kappa_score(full['pool_proba'].argmax(1), q['pool_proba'].argmax(1)):.3f}, "
                  f"{int((full['pool_proba'].argmax(1) != q['pool_proba'].argmax(1)).sum())} of {len(pool):,} "
                  f"differ; pool scoring {full['pool'] / q['pool']:.1f}x faster, round "
                  f"{(full['fit'] + full['pool'] + full['test']) / (q['fit'] + q['pool'] + q['test']):.1f}x "
                  f"(its fit column includes export + quantize, {q['export']:.1f} s a round); fp32 export check "
                  f"max |p - p'| {check:.1e}",
                  flush=True)
        if "small-text" in rows and "alexp" in rows:
            st, al = rows["small-text"], rows["alexp"]
            print(f"alexp round vs small-text: "
                  f"{(st['fit'] + st['pool'] + st['test']) / (al['fit'] + al['pool'] + al['test']):.1f}x faster",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
