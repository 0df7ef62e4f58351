"""A human oracle at the terminal: one item at a time, one key per label."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.oracles.base import Oracle


class Terminal(Oracle):
    """Shows each requested item (id, text, context) and takes one key per answer.

    Keys: `label_keys[k]` answers class k of `classes`; `s` skips (the item stays pending for a later run);
    `u` undoes the last answer and asks it again; `q` (or the end of input) stops, keeping the answers given:
    the run saves its state, and running the same command again continues with the remaining items.
    On a terminal a single key press is enough; from a pipe, one line per key.
    """

    SKIP, UNDO, QUIT = "s", "u", "q"

    def __init__(self, context: Mapping[str, NDArray], classes: Sequence = (0, 1),
                 label_keys: Sequence[str] = ("0", "1"), max_chars: int = 500, cost_per_label: float = 1.0,
                 stdin: TextIO | None = None, stdout: TextIO | None = None):
        keys = [str(k) for k in label_keys]
        if len(keys) != len(classes) or len(set(keys) | {self.SKIP, self.UNDO, self.QUIT}) != len(keys) + 3:
            raise AlexpError(f"label_keys must give one distinct key per class {list(classes)} other than "
                             f"s, u and q; got {keys}")
        self.context, self.classes, self.keys = context, list(classes), keys
        super().__init__(cost_per_label)
        self.max_chars = max_chars
        self.stdin, self.stdout = stdin, stdout
        self._pending = np.empty(0, dtype=np.intp)

    def request(self, ids: NDArray[np.intp]) -> None:
        self._pending = np.asarray(ids)

    def collect(self) -> dict[int, int] | None:
        out = self.stdout or sys.stdout
        answers: dict[int, int] = {}
        order: list[int] = []  # rows answered, for undo
        queue = [int(i) for i in self._pending]
        i = 0
        while i < len(queue):
            row = queue[i]
            self._show(row, i, len(queue), out)
            key = self._key()
            if key in (None, self.QUIT):
                break
            if key == self.UNDO:
                if order:
                    last = order.pop()
                    del answers[last]
                    i = queue.index(last)
                continue
            if key == self.SKIP:
                i += 1
            elif key in self.keys:
                answers[row] = self.keys.index(key)
                order.append(row)
                i += 1
            else:
                print(f"  '{key}' is not a key here; use {'/'.join(self.keys)}, s, u or q", file=out)
        print(f"{len(answers)} labels given, {len(queue) - len(answers)} left", file=out)
        return answers or None


    def where(self) -> str:
        return "the terminal"

    def _show(self, row: int, i: int, n: int, out) -> None:
        fields = {k: np.asarray(v)[row] for k, v in self.context.items() if k not in ("id", "text")}
        text = str(self.context["text"][row])[: self.max_chars] if "text" in self.context else ""
        choices = ", ".join(f"{k}={c}" for k, c in zip(self.keys, self.classes))
        print(f"\n[{i + 1}/{n}] id {self.context['id'][row]}" + "".join(f"  {k}={v}" for k, v in fields.items()),
              file=out)
        if text:
            print(f"  {text}", file=out)
        print(f"  label? {choices}, s=skip, u=undo, q=quit: ", end="", file=out, flush=True)

    def _key(self) -> str | None:
        stream = self.stdin or sys.stdin
        if stream.isatty():
            return _read_one_key(stream)
        line = stream.readline()
        return line.strip()[:1] if line else None


def _read_one_key(stream) -> str | None:
    import termios
    import tty

    fd = stream.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        ch = stream.read(1)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
    return ch or None
