"""A human oracle that works through files: batches out as CSV or Parquet, labels back the same way."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError, faults
from alexp.atomic import atomic_path
from alexp.errors import check_writable, first_line
from alexp.oracles.base import Oracle, shown_columns
from alexp.oracles.human import wait_for

log = logging.getLogger(__name__)


class Files(Oracle):
    """Writes each requested batch to `<queue_dir>/pending.<format>` and reads answers from `labels.<format>`.

    The pending file has the items' data `id`, their `text`, the context columns named in `show_columns` and an
    empty `label` column. Fill in labels (values from `classes`) and save the file as labels.csv (or .parquet) in
    the same folder, all at once or row by row. Rows left without a label are not answered yet: they stay pending,
    and nothing already accepted is lost. A labels file with unknown ids, an id given two different labels, or
    labels outside `classes` is rejected whole, with the first offenders named (an id answered twice alike is one
    answer). Once its answers are saved in the run's state, the content that was read is archived as
    `<queue_dir>/done/labels-<time>-<content hash>.<format>` (a name no other file has); the labels file itself
    is removed only if nothing was added to it since it was read. Rows of ids accepted before add nothing again, so
    a file read twice after a crash counts once; a row that gives an accepted id another label is a correction: it
    is applied (said in one line), and the model uses it from its next fit on. With `wait: false` the run saves its
    state and stops until labels arrive (run the same command again to resume); with `wait: true` it polls every
    `poll_seconds`, for at most `timeout_seconds` (null = forever), taking answers as they arrive until the batch is
    complete.
    """

    def __init__(self, context: Mapping[str, NDArray], queue_dir: str = "labels", format: str = "csv",
                 classes: Sequence = (0, 1), show_columns: Sequence[str] = (), wait: bool = False,
                 poll_seconds: float = 10.0, timeout_seconds: float | None = None, cost_per_label: float = 1.0):
        if format not in ("csv", "parquet"):
            raise AlexpError(f"format must be csv or parquet, got {format!r}")
        if "id" not in context:
            raise AlexpError("the files oracle needs the pool's ids in its context")
        self.context = context
        self.shown = shown_columns(context, show_columns)
        self.ids = np.asarray(context["id"])
        self.queue = Path(queue_dir)
        self.format = format
        self.classes = list(classes)
        self.wait, self.poll_seconds, self.timeout_seconds = wait, poll_seconds, timeout_seconds
        super().__init__(cost_per_label)
        check_writable(self.queue, "oracle.queue_dir")
        for path, kind in ((self.queue, "folder"), (self.done, "folder"), (self.pending_file, "file"),
                           (self.labels_file, "file")):
            if path.exists() and path.is_dir() != (kind == "folder"):
                raise AlexpError(f"{path} should be a {kind} and is not; move it away (or set oracle.queue_dir)")
        self._pending = np.empty(0, dtype=np.intp)
        self._accepted: dict[str, int] = {}  # id -> class index, for every label the loop has saved
        self._collected: dict[str, int] = {}  # answers of the labels file last read, until commit()
        self._read_bytes: bytes | None = None  # that file's content, as read
        self._corrections: dict[int, int] = {}  # pool row -> class index: accepted labels given anew
        self._asks_pending = False  # whether the labels file last read lists any pending item
        self._complaint = ""  # the last reason a labels file was refused while waiting (said once)

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
        columns.update({k: np.asarray(self.context[k])[self._pending] for k in ("text", *self.shown)
                        if k in self.context})
        frame = pl.DataFrame(columns).with_columns(pl.lit(None, dtype=pl.String).alias("label"))
        self.queue.mkdir(parents=True, exist_ok=True)
        _write_atomic(frame, self.pending_file)

    def collect(self) -> dict[int, int] | None:
        found = wait_for(self._look, self.wait, self.poll_seconds, self.timeout_seconds)
        if found is None:
            return None
        answers, self._read_bytes = found
        self._collected = {str(self.ids[r]): k for r, k in answers.items()}
        return answers

    def _look(self) -> tuple[dict[int, int], bytes] | None:
        """The labels file's answers for pending rows and the bytes they were read from; None while there is no
        file, or (waiting) while it adds no answer or cannot be read yet (an editor half-way through a save)."""
        try:
            data = self.labels_file.read_bytes()
        except FileNotFoundError:
            return None
        try:
            answers = self._read(data)
        except AlexpError as e:
            if not self.wait:
                raise
            if str(e) != self._complaint:  # said once; the file is read again at the next poll
                self._complaint = str(e)
                log.warning("%s (waiting for a corrected file)", e)
            return None
        self._complaint = ""
        # Waiting, a file that asks about pending items but answers none of them yet is being filled: look
        # again later. One that holds no pending item at all is stale (read before a crash): archive it.
        return (answers, data) if answers or self._corrections or not self.wait or not self._asks_pending else None

    def corrections(self) -> dict[int, int]:
        fixes, self._corrections = self._corrections, {}
        return fixes

    def resume(self, labeled: NDArray[np.intp], labels: NDArray[np.int64] | None = None) -> None:
        labels = np.zeros(len(labeled), dtype=np.int64) if labels is None else np.asarray(labels)
        self._accepted = {str(i): int(k) for i, k in zip(self.ids[labeled], labels)}

    def commit(self) -> None:
        """Archive what was read of the labels file (under a name no other file has); list in the pending file
        only the items still unanswered; then remove the labels file if nothing was added to it since it was
        read (rows written after the read stay there for the next look)."""
        if self._read_bytes is None:
            return
        digest = hashlib.sha256(self._read_bytes).hexdigest()[:12]
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        with atomic_path(self.done / f"labels-{stamp}-{digest}.{self.format}", ".tmp") as tmp:
            tmp.write_bytes(self._read_bytes)
        faults.crash_point("archived")
        self._accepted.update(self._collected)
        rest = np.array([r for r in self._pending if str(self.ids[r]) not in self._accepted], dtype=np.intp)
        if rest.size:  # before the labels file goes: the expert never sees an answered item as pending
            self.request(rest)
        else:
            self.pending_file.unlink(missing_ok=True)
        self._take_away(digest)
        self._collected, self._read_bytes = {}, None

    def _take_away(self, digest: str) -> None:
        """Remove the labels file if it still holds just what was read; one that gained rows stays. To remove it,
        it is renamed (one atomic step, so a save that lands meanwhile makes a new file) and compared again: a
        file that gained rows in between goes back, merged with any new file saved meanwhile."""
        taken = self.queue / f".labels-{digest}.taking"
        try:
            if self.labels_file.read_bytes() != self._read_bytes:
                return  # it gained rows: it stays, whole (its rows already read add nothing when read again)
            os.rename(self.labels_file, taken)
        except FileNotFoundError:
            return
        if taken.read_bytes() == self._read_bytes:
            taken.unlink()
            return
        try:
            os.link(taken, self.labels_file)  # back, unless a new file was saved meanwhile
        except FileExistsError:
            import polars as pl

            read = pl.read_csv if self.format == "csv" else pl.read_parquet
            kw = {"infer_schema": False} if self.format == "csv" else {}
            merged = pl.concat([read(taken, **kw), read(self.labels_file, **kw)], how="diagonal_relaxed")
            _write_atomic(merged, self.labels_file)
        taken.unlink()

    def finish(self) -> None:
        """Every label is in: no request is open, so no pending file should invite more answers."""
        self.pending_file.unlink(missing_ok=True)

    def where(self) -> str:
        return f"fill in the label column of {self.pending_file} and save it as {self.labels_file}"

    def _read(self, data: bytes) -> dict[int, int]:
        """{pool row: class index} for the answered pending rows of a labels file's content; AlexpError if it is
        malformed. Rows of accepted ids that give another label are kept aside as corrections."""
        import io

        import polars as pl

        path = self.labels_file
        try:
            frame = pl.read_csv(io.BytesIO(data), infer_schema=False) if self.format == "csv" else \
                pl.read_parquet(io.BytesIO(data))
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
        ids = frame["id"].cast(pl.String).to_list()
        labels = frame["label"].cast(pl.String).to_list()
        if None in ids:
            raise AlexpError(f"labels file {path} has rows without an id (first at row {ids.index(None) + 1})")
        allowed = {str(c): k for k, c in enumerate(self.classes)}
        again = [(i, lab.strip()) for i, lab in zip(ids, labels) if i in self._accepted and lab is not None
                 and lab.strip() in allowed and allowed[lab.strip()] != self._accepted[i]]
        keep = [i not in self._accepted for i in ids]  # rows of accepted ids add nothing (or correct them)
        ids, labels = [i for i, k in zip(ids, keep) if k], [lab for lab, k in zip(labels, keep) if k]
        self._corrections = {}
        if again:
            rows = {str(i): int(r) for r, i in enumerate(self.ids)}
            for i, lab in again:
                log.warning("labels file: id %s was accepted as %s; corrected to %s (applied: the model uses it from "
                            "its next fit on; to correct a label, give its id a new label in a labels file)",
                            i, self.classes[self._accepted[i]], lab)
                self._corrections[rows[i]] = allowed[lab]
                self._accepted[i] = allowed[lab]
        requested = {str(i): int(r) for i, r in zip(self.ids[self._pending], self._pending)}
        self._asks_pending = any(i in requested for i in ids)
        unknown = [i for i in ids if i not in requested]
        if unknown:
            raise AlexpError(f"labels file {path} has ids that were not requested: {unknown[:5]}")
        answered = [(i, lab.strip()) for i, lab in zip(ids, labels) if lab is not None and lab.strip() != ""]
        bad = [(i, lab) for i, lab in answered if lab not in allowed]
        if bad:
            raise AlexpError(f"labels file {path} has labels outside {self.classes}: "
                             + ", ".join(f"id {i}: {lab!r}" for i, lab in bad[:5]))
        given: dict[str, set[str]] = {}
        for i, lab in answered:  # the same answer twice is one answer; two different ones are for the user
            given.setdefault(i, set()).add(lab)
        torn = sorted(i for i, labs in given.items() if len(labs) > 1)
        if torn:
            raise AlexpError(f"labels file {path} gives ids two different labels: "
                             + ", ".join(f"id {i}: {sorted(given[i])}" for i in torn[:5]) + "; keep one row per id")
        return {requested[i]: allowed[labs.pop()] for i, labs in given.items()}


def _write_atomic(frame, path: Path) -> None:
    with atomic_path(path, path.suffix + ".tmp") as tmp:
        frame.write_csv(tmp) if path.suffix == ".csv" else frame.write_parquet(tmp)
