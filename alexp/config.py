"""Config nodes: check them before any work, instantiate them with one-line errors, and name a run's config.

The constructor signature is the schema: a misspelt key, an unimportable `_target_` or a `???` value fails in
`check_node` before data is loaded. `run_key` hashes what decides a run's results; `params` and `choices` are what
MLflow shows of it. No MLflow, no loop: alexp.runner puts these together.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import re
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from alexp import AlexpError

GROUPS = ("data", "features", "model", "acquisition", "oracle", "budget")
OPTIONAL_GROUPS = ("scout", "stopping", "engine")  # null unless chosen
# Arguments alexp passes at instantiation, not set in YAML.
RUNTIME_ARGS = {"oracle": ("truth", "rng", "context", "pool_features", "seed", "features"), "scout": ("features",)}
# Settings that change neither a run's results (beyond float rounding) nor where it is logged.
NOT_IN_RUN_KEY = ("progress", "state_dir", "threads", "engine")  # an engine picks what this process would
# How a run waits for a person, or pages an item, does not change what it asks: changing it resumes the same run.
NOT_IN_RUN_KEY_OF = {"oracle": ("wait", "poll_seconds", "timeout_seconds", "page_lines")}
NOT_PARAMS = ("tracking", *NOT_IN_RUN_KEY)  # overrides not worth an MLflow param


def check_seed(seed: Any) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise AlexpError(f"seed must be a non-negative integer, got {seed!r}; e.g. seed=0 (sweep: -m seed=0,1,2)")


def check_node(node: Any, where: str, skip: tuple[str, ...] = ()) -> None:
    """Raise AlexpError for a `_target_` that cannot be imported, a key its signature lacks, or a `???` value.

    The constructor signature is the schema: a misspelt key fails here, before any data is loaded.
    """
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            check_node(item, f"{where}[{i}]", skip)
        return
    if not isinstance(node, DictConfig):
        return
    for k in node:
        if OmegaConf.is_missing(node, k):
            raise AlexpError(f"{where}.{k} is required: set it on the command line, e.g. {where}.{k}=...")
    target = node.get("_target_")
    if target is not None:
        params = _signature_params(target, where)
        if params is not None:
            for k in node:
                if not str(k).startswith("_") and k not in params:
                    close = difflib.get_close_matches(str(k), params, n=1)
                    hint = f"; did you mean {where}.{close[0]}?" if close else ""
                    raise AlexpError(f"{where}: unknown key {k!r} for {target}{hint} "
                                     f"(valid keys: {', '.join(p for p in params if p not in skip)})")
    for k in node:
        if not OmegaConf.is_missing(node, k):
            check_node(node[k], f"{where}.{k}", skip)  # nested oracles (tiers) get the same runtime arguments


def _signature_params(target: str, where: str) -> list[str] | None:
    """Names of the keyword parameters of `target`, or None when it takes **kwargs."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception as e:
        raise AlexpError(f"{where}: cannot import _target_ {target!r} ({e})") from None
    params = inspect.signature(obj).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def instantiate(cfg: DictConfig, group: str, **runtime: Any) -> Any:
    """Instantiate config group `group`, reporting its validation errors as 'group: problem'. Runtime arguments
    go only to a constructor that names them (an oracle that needs no truth gets none)."""
    from hydra.utils import instantiate as hydra_instantiate

    node = OmegaConf.select(cfg, group)  # a group, or a node below one ("curated_set.oracle")
    names = _signature_params(node["_target_"], group) if runtime and "_target_" in node else None
    if names is not None:
        runtime = {k: v for k, v in runtime.items() if k in names}
    return prefixed(group, lambda: hydra_instantiate(node, _convert_="all", **runtime))


def prefixed(group: str, fn):
    """fn(), its configuration errors reported as 'group: problem'."""
    from hydra.errors import InstantiationException

    try:
        return fn()
    except AlexpError as e:
        raise AlexpError(f"{group}: {e}") from None
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, AlexpError):
            raise AlexpError(f"{group}: {cause}") from None
        raise AlexpError(f"{group}: {cause or e}") from None


def run_key(resolved: dict) -> str:
    """Hash of the config that determines a run's results and its MLflow experiment: the same config resumes
    the same checkpoint (and MLflow run); the same experiment logged to another store or experiment does not."""
    content = {k: v for k, v in resolved.items() if k not in NOT_IN_RUN_KEY
               and not (k == "stopping" and v is None)}  # runs from before stopping rules keep their key
    for group, keys in NOT_IN_RUN_KEY_OF.items():
        if isinstance(content.get(group), dict):
            content[group] = {k: v for k, v in content[group].items() if k not in keys}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def params(cfg: DictConfig) -> dict[str, str]:
    """MLflow params: each group's chosen option, the seed, and the job's overrides that change results."""
    out = {g: v for g, v in choices().items() if v is not None}
    out["seed"] = str(cfg.seed)
    if HydraConfig.initialized():
        overrides = {}
        for override in HydraConfig.get().overrides.task:  # a key set twice: the last value is the one used
            k, _, v = override.lstrip("+~").partition("=")
            k = k.split("@")[-1]  # a group placed at another package ('oracle@curated_set.oracle'): its package
            group, _, key = k.partition(".")
            if group not in NOT_PARAMS and key not in NOT_IN_RUN_KEY_OF.get(group, ()):
                overrides[k] = re.sub(r"\\(.)", r"\1", v)  # as typed: a sweep's job gets its values escaped
        out.update({k: v for k, v in overrides.items() if k not in out})
    return out


def choices() -> dict[str, str | None]:
    """The option chosen in each config group of the current Hydra job (none outside one)."""
    if not HydraConfig.initialized():
        return {}
    chosen = HydraConfig.get().runtime.choices.items()
    # A nested choice is keyed 'group@package' (e.g. acquisition@acquisition.base): name it by its package.
    return {g.split("@")[-1]: v for g, v in chosen if not g.startswith("hydra")}

