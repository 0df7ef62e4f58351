"""Named crash points for fault-injection tests: `ALEXP_CRASH_AT=name[:k]` kills the process (SIGKILL, as
`kill -9` does) the k-th time (default 1st) it reaches crash point `name`. Unset, a crash point costs one dict
lookup. In a sweep, `ALEXP_CRASH_JOB=n` limits it to the sweep's job number n (Hydra's job.num). The points:

- `store`: a fresh sqlite store has its tables, before it is moved into place;
- `accepted`: labels were accepted and the state saved, before the oracle archives its answers;
- `logged`: metrics were logged to MLflow, before the checkpoint records them;
- `final`: the final artifacts were logged, before the run is marked FINISHED;
- `archived`: the files oracle moved an answer file to done/;
- `tier_bought`: a tier of oracle=tiers answered and its answers were journaled, before the route decided on them.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = ("store", "accepted", "logged", "final", "archived", "tier_bought")
_reached: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """SIGKILL this process here if ALEXP_CRASH_AT names this point (and this is the chosen visit)."""
    target = os.environ.get("ALEXP_CRASH_AT")
    if not target:
        return
    point, _, visit = target.partition(":")
    if point != name or not _this_job():
        return
    _reached[name] += 1
    if _reached[name] == int(visit or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _this_job() -> bool:
    """Whether ALEXP_CRASH_JOB is unset or names the sweep job this process runs."""
    job = os.environ.get("ALEXP_CRASH_JOB")
    if not job:
        return True
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized() and str(HydraConfig.get().job.num) == job
