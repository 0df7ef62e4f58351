"""Pool scoring on a Dask cluster: the selection pass over a pool on disk, spread over workers.

`engine=dask` scores a pool stored on disk (an Arrow pool or a shard folder, alexp.shards) on a Dask cluster:
the pool's rows are cut into tasks of whole blocks (`rows_per_task`, a multiple of the strategy's chunk_size);
the scoring function (the fitted model inside it) is sent to every worker once per selection; each task reads
its rows from the pool's files, scores them block by block exactly as the single-machine pass does and keeps
its own top n with the same seeded tie keys; the driver merges the tasks' top n. The picks are the
single-machine picks, row for row: the same blocks get the same scores (a float32 X @ w may differ with the
block it is computed in, so blocks never straddle tasks), and the top n of the tasks' top n under one total
order (score, then tie key) is the top n of the pool.

Workers read the pool's files themselves, at the path the driver has: on a remote cluster the pool must be on a
file system every worker mounts at that path. Only the selection pass of strategies that score rows one by one
(entropy, margin, least_confidence, density_weighted, vote_entropy, kl_disagreement, bald and the greedy
oracle) runs on the engine; random needs no pass; strategies that compare rows with each other (coreset, badge,
cluster_margin, boundary_pairs, batchbald) work on a seeded candidate subsample read by the driver
(`max_candidates`, 100,000 rows by default on disk). Fitting, the test set's evaluation and the stopping set stay
in the driver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError

log = logging.getLogger(__name__)


def _task_top(score, X, start: int, mask: NDArray[np.bool_], n: int, salt, chunk_size: int):
    """One task: the top n of the pool rows start.. (X and mask: those rows; start a multiple of chunk_size)."""
    from alexp.acquisition.base import scan_top

    return scan_top(score, X, mask, n, salt, chunk_size, start)


@dataclass
class Dask:
    """A Dask cluster that scores pools on disk: a local one started for the run (`address: null`, `workers`
    processes of one thread each) or a running one by its scheduler's address (`tcp://host:8786`)."""

    address: str | None = None  # null: start a local cluster for the run; else the scheduler's address
    workers: int = 2  # worker processes of a local cluster (one thread each)
    rows_per_task: int = 1_048_576  # rows per task, rounded down to whole blocks of the strategy's chunk_size
    _client: Any = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.workers, int) or self.workers < 1:
            raise AlexpError(f"engine.workers must be a positive number of worker processes, got {self.workers!r}")
        if not isinstance(self.rows_per_task, int) or self.rows_per_task < 1:
            raise AlexpError(f"engine.rows_per_task must be a positive number of rows, got {self.rows_per_task!r}")

    @property
    def client(self):
        if self._client is None:
            import os

            os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # here and in the workers: no start-up log
            from distributed import Client, LocalCluster

            if self.address is None:
                cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, scheduler_kwargs={"dashboard": False},
                                       host="127.0.0.1")
                self._client = Client(cluster)
            else:
                try:
                    self._client = Client(self.address, timeout="10s")
                except OSError as e:
                    raise AlexpError(f"engine.address={self.address!r}: no Dask scheduler answers there ({e}); "
                                     "start one (dask scheduler; dask worker ADDRESS) or set engine.address=null "
                                     "for a local cluster") from None
            log.info("scoring the pool on %s", self._client)
        return self._client

    def top(self, score, X, mask: NDArray[np.bool_], n: int, salt, chunk_size: int) -> NDArray[np.intp]:
        """The n best candidate rows of the pool on disk X (mask: the candidates), best first."""
        from alexp.acquisition.base import top_k

        step = max(chunk_size, self.rows_per_task // chunk_size * chunk_size)
        ranges = [(a, min(a + step, len(mask))) for a in range(0, len(mask), step) if mask[a:a + step].any()]
        if not ranges:
            return np.empty(0, dtype=np.intp)
        from distributed import as_completed

        client = self.client
        [shared] = client.scatter([score], broadcast=True, hash=False)
        submit = lambda a, b: client.submit(_task_top, shared, X.window(a, b), a, mask[a:b], n, salt,  # noqa: E731
                                            chunk_size, pure=False)
        limit = 2 * max(1, sum(client.nthreads().values()))  # tasks in flight: the driver holds only theirs
        waiting = iter(ranges[limit:])
        running = as_completed([submit(a, b) for a, b in ranges[:limit]])
        rows, scores = np.empty(0, dtype=np.intp), np.empty(0)
        for future in running:
            part_rows, part_scores = future.result()
            future.release()
            rows, scores = np.concatenate([rows, part_rows]), np.concatenate([scores, part_scores])
            best = top_k(scores, rows, n, salt)  # the running top n, merged as tasks end
            rows, scores = rows[best], scores[best]
            following = next(waiting, None)
            if following is not None:
                running.add(submit(*following))
        return rows

    def close(self) -> None:
        if self._client is not None:
            cluster = self._client.cluster if self.address is None else None
            self._client.close()
            if cluster is not None:
                cluster.close()
            self._client = None
