"""A human oracle that works through files: batches out as CSV or Parquet, labels back the same way."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError, faults
from alexp.atomic import atomic_path
from alexp.errors import first_line
from alexp.oracles.base import Oracle
from alexp.oracles.human import wait_for


class Files(Oracle):
    """Writes each requested batch to `<queue_dir>/pending.<format>` and reads answers from `labels.<format>`.

    The pending file has the items' data `id`, their `text` and context columns, and an empty `label` column.
    Fill in labels (values from `classes`) and save the file as labels.csv (or .parquet) in the same folder.
    Rows left without a label are not answered yet: they stay pending, and nothing already accepted is lost.
    A labels file with unknown ids, duplicate ids or labels outside `classes` is rejected whole, with the first
    offenders named. Once its answers are saved in the run's state, an accepted file moves to
    `<queue_dir>/done/labels-<time>-<content hash>.<format>` (a name no other file has); rows of ids accepted
    before are skipped, so a file read again after a crash adds nothing twice. With `wait: false` the run saves its
    state and stops until labels arrive (run the same command again to resume); with `wait: true` it polls
    every `poll_seconds`, for at most `timeout_seconds` (null = forever).
    """

    def __init__(self, context: Mapping[str, NDArray], queue_dir: str = "labels", format: str = "csv",
                 classes: Sequence = (0, 1), wait: bool = False, poll_seconds: float = 10.0,
                 timeout_seconds: float | None = None, cost_per_label: float = 1.0):
        if format not in ("csv", "parquet"):
            raise AlexpError(f"format must be csv or parquet, got {format!r}")
        if "id" not in context:
            raise AlexpError("the files oracle needs the pool's ids in its context")
        self.context = context
        self.ids = np.asarray(context["id"])
        self.queue = Path(queue_dir)
        self.format = format
        self.classes = list(classes)
        self.wait, self.poll_seconds, self.timeout_seconds = wait, poll_seconds, timeout_seconds
        super().__init__(cost_per_label)
        for path, kind in ((self.queue, "folder"), (self.done, "folder"), (self.pending_file, "file"),
                           (self.labels_file, "file")):
            if path.exists() and path.is_dir() != (kind == "folder"):
                raise AlexpError(f"{path} should be a {kind} and is not; move it away (or set oracle.queue_dir)")
        self._pending = np.empty(0, dtype=np.intp)
        self._accepted: set[str] = set()  # ids whose labels the loop has saved
        self._collected: list[str] = []  # ids answered by the labels file last read, until commit()

    @property
    def done(self) -> Path:
        return self.queue / "done"

    @property
    def pending_file(self) -> Path:
        return self.queue / f"pending.{self.format}"

    @property
    def labels_file(self) -> Path:
        return self.queue / f"labels.{self.format}"

    def request(self, ids: NDArray[np.intp]) -> None:
        import polars as pl

        self._pending = np.asarray(ids)
        columns = {"id": self.ids[self._pending]}
        columns.update({k: np.asarray(v)[self._pending] for k, v in self.context.items() if k != "id"})
        frame = pl.DataFrame(columns).with_columns(pl.lit(None, dtype=pl.String).alias("label"))
        self.queue.mkdir(parents=True, exist_ok=True)
        _write_atomic(frame, self.pending_file)

    def collect(self) -> dict[int, int] | None:
        if wait_for(lambda: self.labels_file.is_file() or None, self.wait, self.poll_seconds,
                    self.timeout_seconds) is None:
            return None
        answers = self._read(self.labels_file)
        self._collected = [str(i) for i in self.ids[list(answers)]]
        return answers

    def resume(self, labeled: NDArray[np.intp]) -> None:
        self._accepted = {str(i) for i in self.ids[labeled]}

    def commit(self) -> None:
        """Archive the labels file whose answers the loop has saved, under a name no other file has."""
        if not self.labels_file.is_file():
            return
        digest = hashlib.sha256(self.labels_file.read_bytes()).hexdigest()[:12]
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        self.done.mkdir(exist_ok=True)
        os.replace(self.labels_file, self.done / f"labels-{stamp}-{digest}.{self.format}")
        faults.crash_point("archived")
        self._accepted.update(self._collected)
        self._collected = []

    def finish(self) -> None:
        """Every label is in: no request is open, so no pending file should invite more answers."""
        self.pending_file.unlink(missing_ok=True)

    def where(self) -> str:
        return f"fill in the label column of {self.pending_file} and save it as {self.labels_file}"

    def _read(self, path: Path) -> dict[int, int]:
        """{pool row: class index} for the answered rows of a labels file; AlexpError if it is malformed."""
        import polars as pl

        try:
            frame = pl.read_csv(path, infer_schema=False) if self.format == "csv" else pl.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise AlexpError(f"cannot read labels file {path}: {first_line(e, 200)}; save it as UTF-8 {self.format} "
                             f"with the columns of {self.pending_file}") from None
        missing = [c for c in ("id", "label") if c not in frame.columns]
        if missing:
            raise AlexpError(f"labels file {path} lacks column(s) {missing}; keep the columns of {self.pending_file}")
        nested = [c for c in ("id", "label") if frame.schema[c].is_nested()]
        if nested:
            raise AlexpError(f"labels file {path}: column {nested[0]!r} holds {frame.schema[nested[0]]} values; "
                             "give one id and one label per row")
        seen = pl.col("id").cast(pl.String).is_in(list(self._accepted)).fill_null(False)
        frame = frame.filter(~seen)  # rows whose labels were saved before a crash add nothing
        ids = frame["id"].cast(pl.String).to_list()
        labels = frame["label"].cast(pl.String).to_list()
        if None in ids:
            raise AlexpError(f"labels file {path} has rows without an id (first at row {ids.index(None) + 1})")
        requested = {str(i): int(r) for i, r in zip(self.ids[self._pending], self._pending)}
        unknown = [i for i in ids if i not in requested]
        if unknown:
            raise AlexpError(f"labels file {path} has ids that were not requested: {unknown[:5]}")
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        if dupes:
            raise AlexpError(f"labels file {path} has duplicate ids: {dupes[:5]}")
        allowed = {str(c): k for k, c in enumerate(self.classes)}
        answered = [(i, lab.strip()) for i, lab in zip(ids, labels) if lab is not None and lab.strip() != ""]
        bad = [(i, lab) for i, lab in answered if lab not in allowed]
        if bad:
            raise AlexpError(f"labels file {path} has labels outside {self.classes}: "
                             + ", ".join(f"id {i}: {lab!r}" for i, lab in bad[:5]))
        return {requested[i]: allowed[lab] for i, lab in answered}


def _write_atomic(frame, path: Path) -> None:
    with atomic_path(path, path.suffix + ".tmp") as tmp:
        frame.write_csv(tmp) if path.suffix == ".csv" else frame.write_parquet(tmp)
