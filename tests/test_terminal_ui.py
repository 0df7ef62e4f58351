"""What a person sees in a real terminal (a pseudo-terminal): a sweep's lines, the terminal oracle's feedback,
the first line at start-up and the closing table."""

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from conftest import job_env


class Terminal:
    """`alexp` run on a pseudo-terminal (stdin, stdout and stderr), as a person at a terminal runs it."""

    def __init__(self, args, cwd, env=None, size=(24, 80)):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))  # rows, columns
        self.started = time.monotonic()
        env = {k: v for k, v in (env or job_env(cwd)).items() if k not in ("COLUMNS", "LINES")}  # the pty's size
        self.proc = subprocess.Popen([sys.executable, "-m", "alexp", *args], cwd=cwd, env=env,
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
    ids = re.findall(r"^item \d of 4, round 1 of 2: id (\d+)  \(0 labels accepted so far\)$", text, re.MULTILINE)
    assert ids[3] == ids[1] and ids[4] == ids[2] and len(set(ids[:3])) == 3  # the undone item is asked again
    answers = re.findall(r"q=quit: (.*)$", text, re.MULTILINE)
    assert answers == ["clickbait", "news", f"undone: id {ids[1]} was news; asking it again", "news", "quit"]
    assert "2 labels given, 2 left" in text
    assert text.count("waiting for 2 labels") == 1  # said once, in words
    assert "alexp: waiting for 2 labels: the terminal oracle stopped before the batch was done" in text

    term = Terminal(args, tmp_path)  # the same command continues: the two items left, then round 2's two
    for i, key in enumerate("0101", start=1):
        term.read_until(prompt, count=i)
        term.press(key)
    text = term.finish()
    assert "resuming from" in text and "2 labels so far, in round 1 of 2" in text
    assert re.search(r"^item 2 of 2, round 2 of 2: id \d+  \(4 labels accepted so far\)$", text, re.MULTILINE)
    table = text[text.index("kappa by label count"):]
    assert "str" not in table and "i64" not in table and "f64" not in table  # no dtype rows
    assert "next: alexp ui" in table and "alexp report" in table


# --- the expert's side: the whole item, never the answer, no answer lost ----------------------------------------

WORDS = [f"w{i:04d}" for i in range(500)]  # 500 numbered words: 2,999 characters, checkable in order


def expert_data(tmp_path, long_text=False):
    """40 headlines (or one 3,000-character text each) with two label-like context columns beside them."""
    rows = []
    for i in range(40):
        text = " ".join(WORDS) if long_text else f"headline number {i} about {'this' if i % 4 == 0 else 'the vote'}"
        rows.append(f'{i},"{text}",{int(i % 4 == 0)},{int(i % 4 == 0)},{3 * int(i % 4 == 0)}\n')
    (tmp_path / "items.csv").write_text("id,text,label,label_screening,crowd_votes\n" + "".join(rows))
    return ["oracle=terminal", "data=file", f"data.path={tmp_path / 'items.csv'}", "data.text_column=text",
            "data.label_column=label", "data.context_columns=[label_screening,crowd_votes]",
            "data.class_names=[news,clickbait]", "features=tfidf", "data.test_size=0.25", "budget.initial=4",
            "budget.batch_size=2", "budget.rounds=1"]


PROMPT = b"label? 0=news, 1=clickbait, "


@pytest.mark.slow
def test_a_long_item_is_shown_whole_across_pages_and_no_label_column_is_shown(tmp_path):
    assert len(" ".join(WORDS)) > 2990
    term = Terminal([*expert_data(tmp_path, long_text=True), "oracle.page_lines=10"], tmp_path)
    pages = 0
    while True:
        term.read_until(PROMPT, count=pages + 1)
        pages += 1
        if term.text.rstrip().endswith("q=quit:") and "space=more" not in term.text.splitlines()[-1]:
            break
        term.press(" ")  # the next page
    term.press("1")
    term.read_until(PROMPT, count=pages + 1)
    term.press("q")
    text = term.finish()
    first = text[:text.index("clickbait\n")]  # the first item, all its pages
    assert re.findall(r"w\d{4}", first) == WORDS  # every word, once, in order: nothing cut, nothing repeated
    assert pages >= 4 and "(continued: page 1 of " + f"{pages}; space shows the next)" in first  # 10 lines a page
    assert f"(continued: page {pages - 1} of {pages}; space" in first and f"page {pages} of {pages}" not in first
    shown = [line for line in first.splitlines() if line.startswith("  w")]
    assert len(shown) >= 30 and max(len(line) for line in shown) <= 80  # wrapped to the terminal's 80 columns
    assert "label_screening" not in text and "crowd_votes" not in text  # the answers it is compared with: hidden


@pytest.mark.slow
def test_keys_typed_before_an_item_is_drawn_answer_nothing(tmp_path):
    term = Terminal(expert_data(tmp_path), tmp_path)
    term.read_until(PROMPT)
    term.press("11")  # a double press: the second lands before item 2 is drawn
    term.read_until(PROMPT, count=2)
    time.sleep(1.0)
    assert term.text.rstrip().endswith("q=quit:")  # item 2 waits, unanswered
    term.press("0")
    term.read_until(PROMPT, count=3)
    term.press("q")
    answers = re.findall(r"q=quit: (.*)$", term.finish(), re.MULTILINE)
    assert answers == ["clickbait", "news", "quit"]


@pytest.mark.slow
def test_ctrl_c_keeps_the_answers_and_exits_0_without_a_traceback(tmp_path):
    args = expert_data(tmp_path)
    term = Terminal(args, tmp_path)
    for i, key in enumerate("10", start=1):
        term.read_until(PROMPT, count=i)
        term.press(key)
    term.read_until(PROMPT, count=3)
    time.sleep(0.5)  # waiting for a key, as a person thinks
    asked_at = time.monotonic()
    term.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    text = term.finish()  # asserts exit code 0
    assert time.monotonic() - asked_at < 10  # at once, not at the next key press
    after = text[text.rindex("q=quit:"):]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert "interrupted: stopping as with q" in after and "2 labels given, 2 left" in after
    term = Terminal(args, tmp_path)
    term.read_until(PROMPT)
    assert "2 labels so far" in term.text  # kept: the run continues with the two items left
    term.press("q")
    term.finish()


@pytest.mark.slow
def test_a_killed_expert_session_loses_no_answer_and_asks_none_twice(tmp_path):
    """kill -9 after 3 of round 0's 4 answers: the next run takes them from the journal and asks only the 4th."""
    import polars as pl

    from conftest import runs

    args = expert_data(tmp_path)
    term = Terminal(args, tmp_path)
    given = {}
    for i, key in enumerate("101", start=1):
        term.read_until(PROMPT, count=i)
        given[int(re.findall(r"^item \d of 4, round 1 of 2: id (\d+)", term.text, re.MULTILINE)[-1])] = int(key)
        term.press(key)
    term.read_until(b"q=quit: clickbait\r\n", count=2)  # the third answer is echoed (journaled before that)
    term.proc.kill()
    term.proc.wait(timeout=30)
    os.close(term.master)
    assert len(given) == 3

    term = Terminal(args, tmp_path)
    term.read_until(PROMPT)
    assert "3 answers given before the last stop kept (from the journal)" in term.text
    shown = []
    for i, key in enumerate("000", start=1):  # the one item left of round 0, then round 1's two
        term.read_until(PROMPT, count=i)
        shown.append(int(re.findall(r"^item \d of \d, round \d of 2: id (\d+)", term.text, re.MULTILINE)[-1]))
        given[shown[-1]] = int(key)
        term.press(key)
    text = term.finish()
    assert "kappa by label count" in text
    assert not set(shown[:1]) & set(list(given)[:3])  # none of the journaled items was asked again
    client, _, (run,) = runs(tmp_path)
    labeled = pl.read_parquet(client.download_artifacts(run.info.run_id, "labeled.parquet", str(tmp_path)))
    assert dict(zip(labeled["id"].to_list(), labeled["label"].to_list())) == given  # every answer, as given
