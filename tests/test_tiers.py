"""Tiered labelling (oracle=tiers): provenance and cost per tier, no tier asked twice, a route of one tier is that
oracle's own run, the money budget, and a model as a labelling tier."""

import json

import joblib
import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

from alexp import AlexpError, runner
from alexp.loop import LoopState
from alexp.oracles import Perfect, Tiers
from alexp.oracles.simulated import Simulated
from conftest import runs

SMALL = ["data=synthetic", "data.n_rows=2000", "budget.initial=10", "budget.batch_size=10", "budget.rounds=4",
         "acquisition=margin", "progress=false"]
TIERED = [*SMALL, "oracle=tiers", "oracle.route=[cheap,expert]", "oracle.escalate=disagreement"]


def history_of(overrides, checkpoint=None, state=None):
    cfg = runner.compose(overrides)
    parts = runner.build(cfg)
    state = parts.loop(cfg, checkpoint=checkpoint).run(state)
    return parts, state


class Recording(Simulated):
    """A simulated tier that records every row it is asked for (across processes of a test: a class list)."""

    asked: list[tuple[str, int]] = []

    def __init__(self, truth, name: str, flip_every: int = 0, cost_per_label: float = 1.0):
        answers = np.asarray(truth).copy()
        if flip_every:
            answers[::flip_every] = 1 - answers[::flip_every]
        super().__init__(answers, cost_per_label)
        self.name = name

    def request(self, ids):
        Recording.asked.extend((self.name, int(r)) for r in ids)
        super().request(ids)


def recording_tiers(truth, rng, seed=0):
    spec = {"cheap": {"oracle": {"_target_": "test_tiers.Recording", "name": "cheap", "flip_every": 4}},
            "expert": {"oracle": {"_target_": "test_tiers.Recording", "name": "expert", "cost_per_label": 50.0}}}
    return Tiers(spec, ["cheap", "expert"], truth, rng, seed, escalate="disagreement")


def test_labels_keep_their_tier_price_and_every_answer_in_labeled_parquet_and_mlflow(alexp, tmp_path):
    alexp(*TIERED, cwd=tmp_path)
    client, _, (run,) = runs(tmp_path)
    labeled = pl.read_parquet(client.download_artifacts(run.info.run_id, "labeled.parquet", str(tmp_path)))
    assert set(labeled.columns) >= {"id", "round", "label", "tier", "price", "label_cheap", "label_expert"}
    assert labeled.height == 50 and set(labeled["tier"]) == {"cheap", "expert"}
    assert (labeled["label_cheap"] >= 0).all()  # every item is asked of the first tier
    by_tier = {t: labeled.filter(pl.col("tier") == t) for t in ("cheap", "expert")}
    assert (by_tier["cheap"]["label"] == by_tier["cheap"]["label_cheap"]).all()
    assert (by_tier["cheap"]["label_expert"] == -1).all()
    assert (by_tier["expert"]["label"] == by_tier["expert"]["label_expert"]).all()
    assert (by_tier["cheap"]["price"] == 1).all() and (by_tier["expert"]["price"] == 101).all()
    m = run.data.metrics
    assert m["tier_cheap_labels"] == 50 and m["tier_expert_labels"] == by_tier["expert"].height
    assert m["tier_cheap_cost"] + m["tier_expert_cost"] == m["cost"] == labeled["price"].sum()
    assert 0 < m["escalated_share"] < 1 and -1 <= m["tier_cheap_kappa"] <= 1
    steps = [p.step for p in client.get_metric_history(run.info.run_id, "tier_expert_cost")]
    assert steps == [10, 20, 30, 40, 50]  # logged every round
    # nothing before the first model: the initial set keeps its cheap labels
    assert (labeled.filter(pl.col("round") == 0)["tier"] == "cheap").all()


def test_no_tier_is_asked_for_an_item_twice_across_rounds_and_a_resume(pool, tmp_path):
    X, y = pool.X[:300], pool.y[:300]
    from alexp.acquisition import Margin
    from alexp.budget import Budget
    from alexp.loop import Loop
    from alexp.seeds import stream

    def loop(checkpoint):
        oracle = recording_tiers(y, stream(0, "oracle"))
        return Loop(X, pool.X[300:], pool.y[300:], LogisticRegression(), Margin(), oracle,
                    Budget(initial=20, batch_size=20, rounds=4, stratified=False), 0, truth=y,
                    checkpoint=checkpoint, progress=False)

    Recording.asked = []
    whole = loop(None).run()
    assert len(Recording.asked) == len(set(Recording.asked))
    expert = [r for t, r in Recording.asked if t == "expert"]
    assert 0 < len(expert) < 100

    # A run stopped after its cheap tier answered in round 2 (its answers journaled), then run again.
    Recording.asked = []
    checkpoint = tmp_path / "run.npz"
    stopped = loop(checkpoint)
    original = Tiers.collect
    calls = {"n": 0}

    def collect_then_crash(self):
        out = original(self)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # after the tiers were bought and journaled, before the loop accepts
        return out

    Tiers.collect = collect_then_crash
    try:
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
    finally:
        Tiers.collect = original
    journal = [json.loads(line) for line in checkpoint.with_suffix(".answers.jsonl").read_text().splitlines()]
    assert any(e.get("tier") == "expert" for e in journal)
    resumed = loop(checkpoint).run(LoopState.load(checkpoint))
    assert len(Recording.asked) == len(set(Recording.asked)), "a tier was asked for an item twice"
    assert np.array_equal(resumed.labels, whole.labels) and np.array_equal(resumed.labeled_in, whole.labeled_in)
    assert resumed.cost == whole.cost
    np.testing.assert_equal(resumed.history, whole.history)  # NaN (a tier not asked yet) equals NaN


@pytest.mark.parametrize("oracle", [
    ["oracle=measured_expert", "oracle.cost_per_label=100"],
    ["oracle=crowd"],
    ["oracle=target_kappa", "oracle.kappa=0.6"],
], ids=["measured_expert", "crowd", "target_kappa"])
def test_a_route_of_one_tier_is_exactly_that_oracles_own_run(oracle):
    name = "only"
    single, alone = history_of([*SMALL, *oracle])
    spec = runner.compose([*SMALL, *oracle]).oracle
    tier = "{oracle:" + override_value(_plain(spec)) + "}"
    tiered, routed = history_of([*SMALL, "oracle=tiers", f"oracle.route=[{name}]", "oracle.escalate=never",
                                 f"+oracle.tiers.{name}={tier}"])
    assert np.array_equal(routed.labels, alone.labels) and np.array_equal(routed.labeled_in, alone.labeled_in)
    assert routed.cost == alone.cost
    strip = [{k: v for k, v in h.items() if not k.startswith("tier_")} for h in routed.history]
    np.testing.assert_equal(strip, alone.history)


def override_value(value) -> str:
    """A value in Hydra's override grammar (dicts and lists inline, strings quoted)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)


def _plain(node):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)


def test_a_money_budget_ends_the_run_at_the_right_round():
    # One tier at 10 per label, 175 to spend: the initial 10 (100), then the 7 labels 75 pays for; then nothing.
    _, state = history_of([*SMALL, "oracle=tiers", "oracle.route=[expert]", "oracle.escalate=never",
                           "oracle.tiers.expert.oracle.cost_per_label=10", "budget.max_cost=175"])
    assert [h["n_labels"] for h in state.history] == [10, 17] and [h["cost"] for h in state.history] == [100, 170]
    # Routed: never past the budget; escalations wanted beyond the money are not bought, the run ends when not
    # even a cheap label is left to pay for (or its rounds end).
    unlimited = history_of(TIERED)[1]
    limit = 0.5 * unlimited.cost
    _, state = history_of([*TIERED, f"budget.max_cost={limit}"])
    costs = [h["cost"] for h in state.history]
    assert costs[-1] <= limit and costs == sorted(costs)
    assert state.history[-1]["n_labels"] < unlimited.history[-1]["n_labels"] or costs[-1] < unlimited.cost
    assert limit - costs[-1] < 1 or len(state.history) == 5


def test_a_model_fitted_elsewhere_labels_as_a_tier_with_its_confidence(tmp_path):
    from alexp.data import Synthetic

    table = Synthetic(n_rows=2000).load()
    elsewhere = LogisticRegression().fit(table.inputs[1000:], table.y[1000:])  # "another source"
    joblib.dump(elsewhere, tmp_path / "model.joblib")
    model = f"{{oracle:{{_target_:alexp.oracles.ModelLabels,cost_per_label:0.5,model:{{_target_:joblib.load," \
            f"filename:'{tmp_path / 'model.joblib'}'}}}}}}"
    parts, state = history_of([*SMALL, "oracle=tiers", f"+oracle.tiers.scout={model}", "oracle.route=[scout,expert]",
                               "oracle.escalate=confidence", "oracle.threshold=0.9"])
    scout = parts.oracle.tiers["scout"]
    sure = scout.confidence(np.arange(parts.n_pool))
    assert sure.min() >= 0.5 and np.array_equal(scout.answers, elsewhere.predict(parts.X_pool))
    labeled = state.selected()
    escalated = np.array([r in parts.oracle.bought["expert"] for r in labeled])
    assert escalated.any() and np.array_equal(escalated, sure[labeled] < 0.9)
    assert state.history[-1]["tier_scout_kappa"] > 0.3


def test_tier_weights_reach_the_model_and_a_model_without_weights_is_refused():
    base, _ = history_of(TIERED)
    _, weighted = history_of([*TIERED, "oracle.tiers.cheap.weight=0.2"])
    _, plain = history_of(TIERED)
    assert weighted.history[-1]["kappa"] != plain.history[-1]["kappa"]
    with pytest.raises(AlexpError, match="does not take sample weights"):
        history_of([*TIERED, "oracle.tiers.cheap.weight=0.2", "model=self_trained"])


@pytest.mark.parametrize("override, message", [
    (["oracle.route=[cheap,nobody]"], r"route \['cheap', 'nobody'\] must name each tier once.*unknown: \['nobody'\]"),
    (["oracle.escalate=never"], "a route of several tiers needs a rule"),
    (["oracle.route=[expert]"], "a route of one tier has nowhere to escalate to"),
    (["oracle.escalate=confidence"], "tier 'cheap' .* does not"),
    (["oracle.escalate=sometimes"], "escalate must be one of never, confidence, disagreement, uncertain"),
    (["oracle.tiers.cheap.weight=0"], "tiers.cheap.weight must be > 0"),
    (["oracle.tiers.cheap.oracle.kappa=2"], r"oracle: tiers.cheap.oracle: kappa must be in \[0, 1\]"),
    (["budget.max_cost=5"], r"budget.max_cost=5 does not pay for the first 10 labels at 1 each \(10\)"),
])
def test_bad_tier_settings_are_refused_by_name(override, message):
    with pytest.raises(AlexpError, match=message):
        runner.build(runner.compose([*TIERED, *override]))


def test_perfect_tiers_make_the_rule_visible():
    """A cheap tier wrong on every 4th item and a perfect expert: disagreement escalates only items where the model
    disagrees with the cheap label, so every escalated item the cheap tier got wrong is fixed."""
    from alexp.seeds import stream

    y = np.tile([0, 1, 0, 0, 1], 40)
    tiers = recording_tiers(y, stream(0, "oracle"))
    rows = np.arange(40)
    proba = y[rows].astype(float) * 0.9 + 0.05  # a model that knows the truth
    tiers.advise(rows, proba, (proba > 0.5).astype(int))
    tiers.request(rows)
    got = tiers.collect()
    assert got == {int(r): int(y[r]) for r in rows}  # every cheap error disagreed with the model: fixed
    assert set(tiers.bought["expert"]) == {r for r in range(40) if r % 4 == 0}
    assert tiers.cost(rows) == 40 + 50 * 10
    assert isinstance(Perfect(y), Simulated)


def test_a_misspelt_key_of_a_tier_is_named_with_its_fix_before_any_data_is_read():
    with pytest.raises(AlexpError, match=r"oracle.tiers.cheap.oracle: unknown key 'kapa' .* did you mean "
                                         r"oracle.tiers.cheap.oracle.kappa\? \(valid keys: kappa,") as e:
        runner.check(runner.compose([*TIERED, "+oracle.tiers.cheap.oracle.kapa=0.5"]))
    assert "truth" not in str(e.value)  # the arguments alexp passes are not keys to set


def test_a_person_as_the_expert_tier_is_asked_only_for_the_escalated_items_across_restarts(alexp, tmp_path):
    """The expert tier is the files oracle: each run buys the cheap labels, writes only the escalated items to
    pending.csv and stops; answered and run again, it continues; the finished run's labels hold the person's answers
    for exactly the escalated items, and no cheap label was bought twice (each item's price: 1, or 1 + 100)."""
    from alexp.data import Synthetic

    table = Synthetic(n_rows=2000).load()
    truth = dict(zip(table.ids.tolist(), table.y.tolist()))
    args = [*TIERED, "~oracle.tiers.expert.oracle",
            "+oracle.tiers.expert.oracle={_target_:alexp.oracles.Files,queue_dir:labels,cost_per_label:100}"]
    asked = []
    for _ in range(10):
        result = alexp(*args, cwd=tmp_path)
        out = result.stdout + result.stderr
        if "waiting for" not in out:
            break
        assert "tier expert: fill in the label column of labels/pending.csv" in out
        pending = pl.read_csv(tmp_path / "labels" / "pending.csv")
        asked += pending["id"].to_list()
        pending.with_columns(label=pl.Series([int(truth[i]) for i in pending["id"]])).write_csv(
            tmp_path / "labels" / "labels.csv")
    client, _, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED" and len(asked) == len(set(asked)) > 0
    labeled = pl.read_parquet(client.download_artifacts(run.info.run_id, "labeled.parquet", str(tmp_path)))
    expert = labeled.filter(pl.col("tier") == "expert")
    assert sorted(expert["id"].to_list()) == sorted(asked)
    assert all(lab == truth[i] for i, lab in zip(expert["id"], expert["label"]))
    assert set(labeled["price"]) <= {1.0, 101.0} and run.data.metrics["cost"] == labeled["price"].sum()
