"""Every option of every config group composes and instantiates; bad keys fail before any work."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from alexp import AlexpError
from alexp.config import GROUPS, RUNTIME_ARGS, check_node
from alexp.config import instantiate as build

from conftest import CONF

OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
REQUIRED = {("data", "file"): ["data.path=x.csv", "data.label_column=label", "data.text_column=text"],
            ("data", "shards"): ["data.path=pool"]}


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def runtime(group):
    if group not in RUNTIME_ARGS:
        return {}
    truth = np.array([0, 1] * 20)
    return {"truth": truth, "rng": np.random.default_rng(0),
            "context": {"id": np.arange(40), "n_hate_speech": truth * 2, "annotator_count": np.full(40, 3),
                        "label_abstract_screening": truth},
            "pool_features": truth[:, None] + np.random.default_rng(1).normal(size=(40, 3))}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_checks_and_instantiates(group, option):
    cfg = composed(f"{group}={option}", *REQUIRED.get((group, option), []))
    check_node(cfg[group], group, skip=RUNTIME_ARGS.get(group, ()))
    obj = build(cfg, group, **runtime(group))
    assert type(obj).__name__.lower().replace("_", "") in OmegaConf.select(cfg, f"{group}._target_").lower()


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize("preset", PRESETS)
def test_experiment_presets_compose(preset):
    cfg = composed(f"+experiment={preset}")
    for group in GROUPS:
        check_node(cfg[group], group, skip=RUNTIME_ARGS.get(group, ()))
    build(cfg, "budget")


def test_a_misspelt_key_names_the_key_the_group_and_the_fix():
    node = OmegaConf.create({**OmegaConf.to_container(composed().budget), "batch_sise": 5})
    with pytest.raises(AlexpError, match=r"budget: unknown key 'batch_sise'.*did you mean budget.batch_size"):
        check_node(node, "budget")


def test_a_misspelt_key_inside_a_nested_target_is_found():
    node = OmegaConf.create({"_target_": "sklearn.pipeline.make_pipeline",
                             "_args_": [{"_target_": "sklearn.linear_model.LogisticRegression", "CC": 1}]})
    with pytest.raises(AlexpError, match=r"model._args_\[0\]: unknown key 'CC'"):
        check_node(node, "model")


def test_a_missing_required_value_is_named():
    with pytest.raises(AlexpError, match=r"data.path is required"):
        check_node(composed("data=file").data, "data")


def test_an_unimportable_target_is_named():
    with pytest.raises(AlexpError, match=r"acquisition: cannot import _target_ 'alexp.acquisition.Nope'"):
        check_node(OmegaConf.create({"_target_": "alexp.acquisition.Nope"}), "acquisition")


def test_constructor_validation_errors_are_prefixed_with_the_group():
    cfg = composed("budget.batch_size=-5")
    with pytest.raises(AlexpError, match=r"^budget: batch_size must be a positive integer, got -5$"):
        build(cfg, "budget")


def test_presets_read_from_the_data_dir(monkeypatch):
    monkeypatch.setenv("ALEXP_DATA_DIR", "/some/where")
    cfg = composed("data=davidson_hate")
    assert cfg.data.path == "/some/where/davidson2017_hate_offensive.parquet"
    assert instantiate(cfg.data).label_column == "hate_speech"


def test_the_checkpoint_key_follows_results_and_experiment_not_display_settings():
    from alexp.config import run_key

    base = OmegaConf.to_container(composed(), resolve=True)
    same = OmegaConf.to_container(composed("progress=false", "state_dir=/elsewhere"), resolve=True)
    assert run_key(base) == run_key(same)
    for override in ("seed=1", "acquisition=margin", "tracking.experiment_name=other"):
        assert run_key(OmegaConf.to_container(composed(override), resolve=True)) != run_key(base), override
