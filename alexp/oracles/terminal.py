"""A human oracle at the terminal: one item at a time, shown whole, one key per label, every answer kept."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError, lifeline, plural
from alexp.oracles.base import Oracle, shown_columns


class Terminal(Oracle):
    """Shows each requested item (its id, its whole text wrapped to the terminal, and only the context columns
    named in `show_columns`) and takes one key per answer.

    Keys: `label_keys[k]` answers class k of `classes` (shown by its name in `class_names`); space shows the next
    page of a long item (a page ends with "(continued ...)"); `s` skips (the item stays pending for a later run);
    `u` undoes the last answer and asks it again; `q`, Ctrl-C, the end of input or a closed terminal stop,
    keeping the answers given: the run saves its state, and running the same command again continues with the
    remaining items. Keys pressed before an item is on screen are discarded, so no item is answered unseen.
    Every answer is written to a journal beside the run's state the moment it is given, so even a killed
    process loses none: the next run takes them from the journal instead of asking again. On a terminal a
    single key press is enough; from a pipe, one line per key (and no paging).
    """

    SKIP, UNDO, QUIT, MORE = "s", "u", "q", " "
    interactive = True  # the loop shows no progress bar of its own while a person answers here

    def __init__(self, context: Mapping[str, NDArray], classes: Sequence = (0, 1),
                 class_names: Sequence[str] | None = None, label_keys: Sequence[str] = ("0", "1"),
                 show_columns: Sequence[str] = (), page_lines: int | None = None, cost_per_label: float = 1.0,
                 stdin: TextIO | None = None, stdout: TextIO | None = None):
        keys = [str(k) for k in label_keys]
        reserved = {self.SKIP, self.UNDO, self.QUIT, self.MORE}
        if len(keys) != len(classes) or len(set(keys) | reserved) != len(keys) + len(reserved) or \
                any(len(k) != 1 for k in keys):
            raise AlexpError(f"oracle.label_keys must give one distinct single key per class {list(classes)}, "
                             f"other than s, u, q and space; got {keys}")
        if class_names is not None and len(class_names) != len(classes):
            raise AlexpError(f"class_names must name each of the classes {list(classes)}, got {list(class_names)}; "
                             "set data.class_names (or oracle.class_names) to one name per class")
        if page_lines is not None and page_lines < 3:
            raise AlexpError(f"oracle.page_lines must be at least 3 (or null: the terminal's height), got {page_lines}")
        self.context, self.classes, self.keys = context, list(classes), keys
        self.shown = shown_columns(context, show_columns)
        self.names = [str(n) for n in class_names] if class_names is not None else (
            ["negative", "positive"] if len(classes) == 2 else [str(c) for c in classes])
        super().__init__(cost_per_label)
        self.page_lines = page_lines
        self.stdin, self.stdout = stdin, stdout
        self._pending = np.empty(0, dtype=np.intp)
        self._where = ""  # 'round 1 of 6, 20 labels so far': said above each item
        self._journal: Path | None = None
        self._labeled: int | None = None

    def keep_journal(self, path: Path) -> None:
        self._journal = path

    def tell(self, round_: int, rounds: int | None, labeled: int) -> None:
        self._where = f"round {round_ + 1}" + (f" of {rounds + 1}" if rounds is not None else "")
        self._labeled = labeled

    def request(self, ids: NDArray[np.intp]) -> None:
        self._pending = np.asarray(ids)

    def collect(self) -> dict[int, int] | None:
        out = self.stdout or sys.stdout
        queue = [int(i) for i in self._pending]
        answers = self._replay(queue)
        if answers:
            print(f"{plural(len(answers), 'answer')} given before the last stop kept (from the journal)", file=out)
        stream = self.stdin or sys.stdin
        with _single_keys(stream), _hangup_as_interrupt():
            try:
                self._ask(queue, answers, out)
            except KeyboardInterrupt:  # Ctrl-C or a closed terminal: like q, the answers given are kept
                lifeline.handled()
                _say(out, "\ninterrupted: stopping as with q")
        left = len(queue) - len(answers)
        _say(out, f"{plural(len(answers), 'label')} given" + (f", {left} left" if left else ""))
        return answers or None

    def commit(self) -> None:
        """The loop has saved the answers: the journal's work is done."""
        if self._journal is not None:
            self._journal.unlink(missing_ok=True)

    def where(self) -> str:
        return "the terminal oracle stopped before the batch was done"

    # --- asking ---------------------------------------------------------------------------------------------

    def _ask(self, queue: list[int], answers: dict[int, int], out) -> None:
        """Ask each row of `queue` not in `answers` yet, adding to `answers` as the keys come."""
        order: list[int] = []  # rows answered in this sitting, for undo
        i = 0
        while i < len(queue):
            row = queue[i]
            if row in answers:  # answered before the last stop (the journal)
                i += 1
                continue
            key = self._show(row, i + 1, len(queue), out)
            if key in (None, self.QUIT):
                print("quit", file=out)
                return
            if key == self.UNDO:
                if order:
                    last = order.pop()
                    label = answers.pop(last)
                    self._write({"id": self._id(last), "row": last, "undo": True})
                    print(f"undone: id {self._id(last)} was {self.names[label]}; asking it again", file=out)
                    i = queue.index(last)
                else:
                    print("nothing to undo yet", file=out)
                continue
            if key == self.SKIP:
                print("skipped (asked again in the next run)", file=out)
                i += 1
            elif key in self.keys:
                answers[row] = self.keys.index(key)
                self._write({"id": self._id(row), "row": row, "label": answers[row]})
                order.append(row)
                print(self.names[answers[row]], file=out)
                i += 1
            else:
                print(f"{key!r} is not a key here; use {'/'.join(self.keys)}, s, u or q", file=out)

    def _show(self, row: int, i: int, n: int, out) -> str | None:
        """Draw the item page by page (space for the next one) and return the key that answers it."""
        fields = "".join(f"  {k}={np.asarray(self.context[k])[row]}" for k in self.shown)
        head = f"\nitem {i} of {n}, {self._where or 'this batch'}: id {self._id(row)}{fields}"
        if self._labeled is not None:
            head += f"  ({plural(self._labeled, 'label')} accepted so far)"
        width, height = shutil.get_terminal_size((100, 24))
        text = str(self.context["text"][row]) if "text" in self.context else ""
        lines = [w for para in text.splitlines() or [""] for w in textwrap.wrap(para, max(20, width - 4)) or [""]]
        per_page = self.page_lines or max(3, height - 6)
        stream = self.stdin or sys.stdin
        pages = [lines[k:k + per_page] for k in range(0, len(lines), per_page)] if stream.isatty() else [lines]
        choices = ", ".join(f"{k}={name}" for k, name in zip(self.keys, self.names))
        page = 0
        _discard_typed_ahead(stream)  # keys pressed before this item is drawn answer nothing
        print(head, file=out)
        while True:
            for line in pages[page]:
                print(f"  {line}" if line else "", file=out)
            more = page + 1 < len(pages)
            if more:
                print(f"  (continued: page {page + 1} of {len(pages)}; space shows the next)", file=out)
            print(f"  label? {choices}, " + ("space=more, " if more else "") + "s=skip, u=undo, q=quit: ", end="",
                  file=out, flush=True)
            key = self._key()
            if key == self.MORE and more:
                print("", file=out)
                page += 1
                _discard_typed_ahead(stream)
                continue
            return key

    def _key(self) -> str | None:
        """The next key pressed, or None at the end of input. Waits in short `select` steps: a blocking read would
        not return on Ctrl-C once polars or mlflow are imported."""
        stream = self.stdin or sys.stdin
        if not stream.isatty():
            line = stream.readline()
            return line.strip()[:1] if line else None
        fd = stream.fileno()
        while not select.select([fd], [], [], 0.2)[0]:
            pass
        try:
            key = os.read(fd, 1)
        except OSError:  # the terminal is gone
            return None
        return key.decode(errors="replace") or None

    # --- the journal ------------------------------------------------------------------------------------------

    def _id(self, row: int) -> str:
        return str(self.context["id"][row])

    def _write(self, entry: dict) -> None:
        """Append one answer (or undo) to the journal and make it durable before the next item is drawn."""
        if self._journal is None:
            return
        with open(self._journal, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _replay(self, queue: list[int]) -> dict[int, int]:
        """The answers the journal holds for the rows now asked (the last word on each row wins; an undo clears
        it); answers for other rows (accepted before a crash) are ignored."""
        if self._journal is None or not self._journal.is_file():
            return {}
        asked, answers = set(queue), {}
        for line in self._journal.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill mid-write: that answer was not finished
                continue
            row = entry.get("row")
            if row not in asked or entry.get("id") != self._id(row):
                continue
            if entry.get("undo"):
                answers.pop(row, None)
            else:
                answers[row] = int(entry["label"])
        return {r: answers[r] for r in queue if r in answers}


def _discard_typed_ahead(stream) -> None:
    """Drop the keys pressed so far (a terminal only): what is typed before an item is drawn answers nothing."""
    if stream.isatty():
        import termios

        termios.tcflush(stream.fileno(), termios.TCIFLUSH)


def _say(out, line: str) -> None:
    """Print, unless the terminal has gone (a closed window): the answers are in the journal either way."""
    try:
        print(line, file=out, flush=True)
    except OSError:
        pass


@contextmanager
def _hangup_as_interrupt() -> Iterator[None]:
    """A closed terminal (SIGHUP) stops the asking as Ctrl-C does, instead of killing the process."""
    def hangup(signum, frame):
        raise KeyboardInterrupt
    try:
        old = signal.signal(signal.SIGHUP, hangup)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, old)


@contextmanager
def _single_keys(stream) -> Iterator[None]:
    """On a terminal, deliver each key press at once, unechoed (cbreak mode), for as long as items are asked."""
    if not stream.isatty():
        yield
        return
    import termios
    import tty

    fd = stream.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
        except termios.error:  # the terminal is gone
            pass
