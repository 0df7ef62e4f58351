"""What a person sees in a real terminal (a pseudo-terminal): a sweep's lines, the terminal oracle's feedback,
the first line at start-up and the closing table."""

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from conftest import job_env


class Terminal:
    """`alexp` run on a pseudo-terminal (stdin, stdout and stderr), as a person at a terminal runs it."""

    def __init__(self, args, cwd, env=None):
        master, slave = pty.openpty()
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "alexp", *args], cwd=cwd, env=env or job_env(cwd),
                                     stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.master, self.screen, self.first_output = master, b"", None

    def read_until(self, pattern: bytes | None = None, count: int = 1, timeout: float = 300) -> str:
        """Read until `pattern` has appeared `count` times in all output (or, with None, until the process ends)."""
        deadline = time.monotonic() + timeout
        while pattern is None or self.screen.count(pattern) < count:
            assert time.monotonic() < deadline, f"timed out waiting for {pattern!r}:\n{self.text[-3000:]}"
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the process has ended and the terminal is closed
                chunk = b""
            if not chunk:
                assert pattern is None, f"ended before {pattern!r}:\n{self.text[-3000:]}"
                break
            self.first_output = self.first_output or time.monotonic() - self.started
            self.screen += chunk
        return self.text

    def press(self, key: str) -> None:
        os.write(self.master, key.encode())

    def finish(self) -> str:
        text = self.read_until(None)
        assert self.proc.wait(timeout=60) == 0, text[-3000:]
        os.close(self.master)
        return text

    @property
    def text(self) -> str:
        return self.screen.decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.slow
def test_a_parallel_sweep_prints_one_line_per_job_and_no_bars(tmp_path):
    term = Terminal(["-m", "acquisition=random,entropy", "seed=0,1", "budget=small", "data.n_rows=2000",
                     "hydra.launcher.n_jobs=2"], tmp_path)
    text = term.finish()
    print(text)  # shown with -s: what the terminal showed, and how soon something was on screen
    print(f"first output after {term.first_output:.2f} s")
    assert text.splitlines()[0] == "alexp: starting (loading libraries and data) ..."
    jobs = re.findall(r"^\[(\d)/4\] (\S+): kappa -?\d\.\d{3} at 60 labels in \d+ s(?: \(\d running\))?$", text,
                      re.MULTILINE)
    names = sorted(name for _, name in jobs)
    assert sorted(n for n, _ in jobs) == ["1", "2", "3", "4"]
    assert names == sorted(f"{a}-perfect-seed{s}-synthetic-identity" for a in ("random", "entropy") for s in (0, 1))
    assert "\r" not in text and "round/s" not in text and "rounds:" not in text  # no bar, no half-drawn line
    assert "kappa by label count" not in text  # no per-job tables in a sweep
    sweep_dir = re.search(r"^sweep done: 4 jobs in (\S+)$", text, re.MULTILINE).group(1)
    store = f"--tracking-uri sqlite:///{tmp_path}/mlflow.db"
    assert f"next: alexp ui {store}" in text and f"alexp report {store} --sweep-dir {sweep_dir}" in text


@pytest.mark.slow
def test_the_terminal_oracle_echoes_answers_confirms_undo_and_names_classes(tmp_path):
    texts = [f"headline number {i} about {'you will not believe this' if i % 4 == 0 else 'the budget vote'}"
             for i in range(40)]
    with open(tmp_path / "heads.csv", "w") as f:
        f.write("id,text,label\n" + "".join(f"{i},{t},{int(i % 4 == 0)}\n" for i, t in enumerate(texts)))
    args = ["oracle=terminal", "data=file", f"data.path={tmp_path / 'heads.csv'}", "data.text_column=text",
            "data.label_column=label", "data.class_names=[news,clickbait]", "features=tfidf", "data.test_size=0.25",
            "budget.initial=4", "budget.batch_size=2", "budget.rounds=1"]
    term = Terminal(args, tmp_path)
    prompt = b"label? 0=news, 1=clickbait, s=skip, u=undo, q=quit: "
    for i, key in enumerate("10u0", start=1):  # item 1: clickbait, item 2: news, undo it, item 2: news again
        term.read_until(prompt, count=i)
        term.press(key)
    term.read_until(prompt, count=5)
    term.press("q")
    text = term.finish()
    print(text)
    ids = re.findall(r"^\[\d/4\] id (\d+)", text, re.MULTILINE)
    assert ids[3] == ids[1] and ids[4] == ids[2] and len(set(ids[:3])) == 3  # the undone item is asked again
    assert "(round 1 of 2, 0 labels so far, 0 of 4 answered)" in text
    answers = re.findall(r"q=quit: (.*)$", text, re.MULTILINE)
    assert answers == ["clickbait", "news", f"undone: id {ids[1]} was news; asking it again", "news", "quit"]
    assert "2 labels given, 2 left" in text
    assert text.count("waiting for 2 labels") == 1  # said once, in words
    assert "alexp: waiting for 2 labels: the terminal oracle stopped before the batch was done" in text

    term = Terminal(args, tmp_path)  # the same command continues: the two items left, then round 2's two,
    term.press("0101")  # typed ahead, before the first prompt: no key is lost
    text = term.finish()
    assert "resuming from" in text and "2 labels so far, in round 1 of 2" in text
    assert "(round 2 of 2, 4 labels so far, 0 of 2 answered)" in text
    table = text[text.index("kappa by label count"):]
    assert "str" not in table and "i64" not in table and "f64" not in table  # no dtype rows
    assert "next: alexp ui" in table and "alexp report" in table
