"""A human oracle at the terminal: one item at a time, one key per label."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TextIO

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError, plural
from alexp.oracles.base import Oracle


class Terminal(Oracle):
    """Shows each requested item (id, text, context) and takes one key per answer.

    Keys: `label_keys[k]` answers class k of `classes` (shown by its name in `class_names`); `s` skips (the item
    stays pending for a later run); `u` undoes the last answer and asks it again; `q` (or the end of input)
    stops, keeping the answers given: the run saves its state, and running the same command again continues
    with the remaining items. Each answer is echoed by its class name. On a terminal a single key press is
    enough; from a pipe, one line per key.
    """

    SKIP, UNDO, QUIT = "s", "u", "q"
    interactive = True  # the loop shows no progress bar of its own while a person answers here

    def __init__(self, context: Mapping[str, NDArray], classes: Sequence = (0, 1),
                 class_names: Sequence[str] | None = None, label_keys: Sequence[str] = ("0", "1"),
                 max_chars: int = 500, cost_per_label: float = 1.0, stdin: TextIO | None = None,
                 stdout: TextIO | None = None):
        keys = [str(k) for k in label_keys]
        if len(keys) != len(classes) or len(set(keys) | {self.SKIP, self.UNDO, self.QUIT}) != len(keys) + 3:
            raise AlexpError(f"label_keys must give one distinct key per class {list(classes)} other than "
                             f"s, u and q; got {keys}")
        if class_names is not None and len(class_names) != len(classes):
            raise AlexpError(f"class_names must name each of the classes {list(classes)}, got {list(class_names)}; "
                             "set data.class_names (or oracle.class_names) to one name per class")
        self.context, self.classes, self.keys = context, list(classes), keys
        self.names = [str(n) for n in class_names] if class_names is not None else (
            ["negative", "positive"] if len(classes) == 2 else [str(c) for c in classes])
        super().__init__(cost_per_label)
        self.max_chars = max_chars
        self.stdin, self.stdout = stdin, stdout
        self._pending = np.empty(0, dtype=np.intp)
        self._where = ""  # 'round 1 of 6, 20 labels so far': said above each item

    def tell(self, round_: int, rounds: int | None, labeled: int) -> None:
        self._where = f"round {round_ + 1}" + (f" of {rounds + 1}" if rounds is not None else "") + \
            f", {plural(labeled, 'label')} so far"

    def request(self, ids: NDArray[np.intp]) -> None:
        self._pending = np.asarray(ids)

    def collect(self) -> dict[int, int] | None:
        out = self.stdout or sys.stdout
        queue = [int(i) for i in self._pending]
        with _single_keys(self.stdin or sys.stdin):
            answers = self._ask(queue, out)
        left = len(queue) - len(answers)
        print(f"{plural(len(answers), 'label')} given" + (f", {left} left" if left else ""), file=out)
        return answers or None

    def _ask(self, queue: list[int], out) -> dict[int, int]:
        answers: dict[int, int] = {}
        order: list[int] = []  # rows answered, for undo
        i = 0
        while i < len(queue):
            row = queue[i]
            self._show(row, i, len(queue), len(answers), out)
            key = self._key()
            if key in (None, self.QUIT):
                print("quit", file=out)
                break
            if key == self.UNDO:
                if order:
                    last = order.pop()
                    print(f"undone: id {self.context['id'][last]} was {self.names[answers.pop(last)]}; "
                          "asking it again", file=out)
                    i = queue.index(last)
                else:
                    print("nothing to undo yet", file=out)
                continue
            if key == self.SKIP:
                print("skipped (asked again in the next run)", file=out)
                i += 1
            elif key in self.keys:
                answers[row] = self.keys.index(key)
                order.append(row)
                print(self.names[answers[row]], file=out)
                i += 1
            else:
                print(f"'{key}' is not a key here; use {'/'.join(self.keys)}, s, u or q", file=out)
        return answers

    def where(self) -> str:
        return "the terminal oracle stopped before the batch was done"

    def _show(self, row: int, i: int, n: int, answered: int, out) -> None:
        fields = {k: np.asarray(v)[row] for k, v in self.context.items() if k not in ("id", "text")}
        text = str(self.context["text"][row])[: self.max_chars] if "text" in self.context else ""
        choices = ", ".join(f"{k}={name}" for k, name in zip(self.keys, self.names))
        print(f"\n[{i + 1}/{n}] id {self.context['id'][row]}" + "".join(f"  {k}={v}" for k, v in fields.items())
              + (f"  ({self._where}, {answered} of {n} answered)" if self._where else ""), file=out)
        if text:
            print(f"  {text}", file=out)
        print(f"  label? {choices}, s=skip, u=undo, q=quit: ", end="", file=out, flush=True)

    def _key(self) -> str | None:
        stream = self.stdin or sys.stdin
        if stream.isatty():
            return stream.read(1) or None
        line = stream.readline()
        return line.strip()[:1] if line else None



@contextmanager
def _single_keys(stream) -> Iterator[None]:
    """On a terminal, deliver each key press at once, unechoed (cbreak mode), for as long as items are asked.

    The mode is set without flushing input (TCSANOW), so keys typed ahead (while the model fitted, or before the
    prompt appeared) are kept, and it stays on between items so that no key is echoed or waits for Enter."""
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
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
