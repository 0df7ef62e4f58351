"""The files oracle as an expert uses it: label files between runs, rejected and partial files, resume."""

import os

import numpy as np
import polars as pl
import pytest

from alexp.loop import LoopState

from conftest import runs

ARGS = ["oracle=files", "data.n_rows=400", "budget.initial=10", "budget.batch_size=10", "budget.rounds=2",
        "progress=false"]


def expert(ids):
    """The expert's answers: deliberately not the truth, so the test can tell them apart."""
    return [1 if i % 7 == 0 else 0 for i in ids]


def pending(queue):
    return pl.read_csv(queue / "pending.csv")["id"].to_list()


def answer(queue, ids, labels=None):
    labels = [str(x) for x in expert(ids)] if labels is None else labels
    pl.DataFrame({"id": ids, "label": labels}, schema={"id": pl.Int64, "label": pl.String}).write_csv(
        queue / "labels.csv")


def saved_labels(cwd):
    (state_file,) = (cwd / "state").glob("*.npz")
    state = LoopState.load(state_file)
    return state, {int(i): int(lab) for i, lab in zip(np.flatnonzero(state.labeled_in >= 0),
                                                       state.labels[state.labeled_in >= 0])}


def test_an_expert_labels_through_files_across_runs(alexp, tmp_path):
    queue = tmp_path / "labels"
    args = [*ARGS, f"oracle.queue_dir={queue}"]
    out = alexp(*args, cwd=tmp_path).stdout
    assert "waiting for 10 labels" in out and "labels.csv" in out
    first = pending(queue)
    assert len(first) == 10

    answer(queue, first, ["maybe"] + [str(x) for x in expert(first[1:])])  # a label outside [0, 1]
    bad = alexp(*args, cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "labels outside [0, 1]: id" in bad.stderr and "'maybe'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

    answer(queue, first, [str(x) for x in expert(first[:4])] + [""] * 6)  # a partial file: 4 of 10
    assert "waiting for 6 labels" in alexp(*args, cwd=tmp_path).stdout
    assert sorted(pending(queue)) == sorted(first[4:])
    state, got = saved_labels(tmp_path)
    assert state.round == -1 and len(got) == 4

    answer(queue, pending(queue))  # the rest of round 0: the model is fitted and round 1 is requested
    assert "waiting for 10 labels" in alexp(*args, cwd=tmp_path).stdout
    second = pending(queue)
    given = [str(x) for x in expert(second)]
    answer(queue, [second[0], *second], [str(1 - int(given[0])), *given])  # two labels for one id: refused whole
    bad = alexp(*args, cwd=tmp_path, check=False)
    assert bad.returncode == 2 and f"gives ids two different labels: id {second[0]}: ['0', '1']" in bad.stderr
    assert "keep one row per id" in bad.stderr
    state, got = saved_labels(tmp_path)
    assert state.round == 0 and len(got) == 10

    answer(queue, [second[0], *second])  # an id answered twice alike is one answer
    alexp(*args, cwd=tmp_path)
    answer(queue, pending(queue))
    out = alexp(*args, cwd=tmp_path).stdout
    assert "kappa by label count" in out

    client, _, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "kappa")] == [10, 20, 30]
    labeled = pl.read_parquet(client.download_artifacts(run.info.run_id, "labeled.parquet", str(tmp_path)))
    assert labeled.height == 30
    assert labeled["label"].to_list() == expert(labeled["id"].to_list())  # the answers given, exactly
    assert len(list((queue / "done").iterdir())) == 4  # partial + rest of round 0, rounds 1 and 2: all kept


def test_with_wait_the_oracle_polls_until_labels_arrive_or_the_timeout(tmp_path):
    import threading

    from alexp.oracles import Files

    oracle = Files({"id": np.array([5, 6, 7])}, queue_dir=str(tmp_path), wait=True, poll_seconds=0.02,
                   timeout_seconds=0.1)
    oracle.request(np.array([0, 2]))
    assert oracle.collect() is None  # nothing came within the timeout: the run saves and stops
    oracle.timeout_seconds = None

    def expert_saves():  # written whole, then renamed: the poll never sees half a file
        (tmp_path / "draft").mkdir()
        answer(tmp_path / "draft", [5, 7], ["1", "0"])
        (tmp_path / "draft" / "labels.csv").rename(tmp_path / "labels.csv")

    later = threading.Timer(0.1, expert_saves)
    later.start()
    assert oracle.collect() == {0: 1, 2: 0}
    later.join()


# --- fuzzed label files ---------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CORRUPTIONS = ("none", "header only", "unrequested id", "duplicate id", "bad label", "no label column",
               "garbage bytes", "blank id", "latin-1 bytes")


def _fuzz_loop(queue, checkpoint):
    from sklearn.linear_model import LogisticRegression

    from alexp.acquisition import Random
    from alexp.budget import Budget
    from alexp.loop import Loop
    from alexp.oracles import Files

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    oracle = Files({"id": np.arange(1000, 1080)}, queue_dir=str(queue))
    return Loop(X[:60], X[60:], y[60:], LogisticRegression(), Random(), oracle,
                Budget(initial=10, batch_size=10, rounds=2, stratified=False), seed=0, checkpoint=checkpoint,
                progress=False)


@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(CORRUPTIONS), st.lists(st.sampled_from(["0", "1", "", " 1 "]),
                                                                        min_size=0, max_size=12),
                                st.randoms(use_true_random=False)), min_size=1, max_size=4))
def test_fuzzed_label_files_are_accepted_or_rejected_in_one_line_and_no_accepted_label_is_lost(steps,
                                                                                               tmp_path_factory):
    from alexp import AlexpError

    tmp = tmp_path_factory.mktemp("fuzz")
    queue, checkpoint = tmp / "labels", tmp / "state.npz"
    loop = _fuzz_loop(queue, checkpoint)
    state = loop.run(None)
    accepted: dict[int, int] = {}
    for corruption, labels, rnd in steps:
        if not state.pending.size:
            break
        ids = [1000 + int(r) for r in state.pending]
        rnd.shuffle(ids)
        rows = list(zip(ids, labels))
        text = "id,label\n" + "".join(f"{i},{lab}\n" for i, lab in rows)
        if corruption == "header only":
            text = "id,label\n"
        elif corruption == "unrequested id":
            text += f"{1000 + next(r for r in range(60) if 1000 + r not in ids and r not in accepted)},1\n"
        elif corruption == "duplicate id":
            text += f"{ids[0]},0\n{ids[0]},1\n"
        elif corruption == "bad label":
            text += f"{ids[-1]},maybe\n"
        elif corruption == "no label column":
            text = "id\n" + "".join(f"{i}\n" for i in ids)
        elif corruption == "blank id":
            text += ",1\n"
        data = text.encode()
        if corruption == "garbage bytes":
            data = bytes(rnd.randrange(256) for _ in range(200))
        elif corruption == "latin-1 bytes":
            data = b"id,label\n" + "caf\u00e9,1\n".encode("latin-1")
        (queue / "labels.csv").write_bytes(data)
        before = LoopState.load(checkpoint)
        valid = corruption in ("none", "header only")
        try:
            state = loop.run(LoopState.load(checkpoint))
        except AlexpError as e:
            assert not valid, (corruption, str(e))
            assert "\n" not in str(e) and len(str(e)) < 400
            after = LoopState.load(checkpoint)
            np.testing.assert_array_equal(after.labels, before.labels)  # nothing accepted, nothing lost
            assert (queue / "labels.csv").exists()  # left in place for the expert to fix
            (queue / "labels.csv").unlink()
            continue
        assert valid, f"{corruption} was accepted"
        if corruption == "none":
            for i, lab in rows:
                if lab.strip():
                    accepted[i - 1000] = int(lab)
        saved = LoopState.load(checkpoint)
        for row, lab in accepted.items():  # every label accepted so far is still there
            assert saved.labels[row] == lab
        assert int((saved.labeled_in >= 0).sum()) == len(accepted)


def test_a_parquet_labels_file_with_list_valued_labels_is_refused_in_one_line(tmp_path):
    from alexp import AlexpError
    from alexp.oracles import Files

    oracle = Files({"id": np.arange(100, 110)}, queue_dir=str(tmp_path), format="parquet")
    oracle.request(np.array([0, 1]))
    pl.DataFrame({"id": [100, 101], "label": [[0], [1]]}).write_parquet(tmp_path / "labels.parquet")
    with pytest.raises(AlexpError, match=r"column 'label' holds List\(Int64\) values; give one id and one label"):
        oracle.collect()
    pl.DataFrame({"id": [100, 101], "label": ["0", "1"]}).write_parquet(tmp_path / "labels.parquet")
    assert oracle.collect() == {0: 0, 1: 1}
    oracle.commit()
    (archived,) = (tmp_path / "done").iterdir()
    assert archived.name.startswith("labels-") and archived.suffix == ".parquet"


# --- an expert who writes the file row by row while the run waits -------------------------------------------

def _waiting_loop(queue, checkpoint, ids):
    from sklearn.linear_model import LogisticRegression

    from alexp.acquisition import Random
    from alexp.budget import Budget
    from alexp.loop import Loop
    from alexp.oracles import Files

    rng = np.random.default_rng(1)
    X = rng.normal(size=(len(ids) + 40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    oracle = Files({"id": ids}, queue_dir=str(queue), wait=True, poll_seconds=0.005)
    return Loop(X[:len(ids)], X[len(ids):], y[len(ids):], LogisticRegression(), Random(), oracle,
                Budget(initial=12, batch_size=12, rounds=2, stratified=False), seed=0, checkpoint=checkpoint,
                progress=False)


def test_an_expert_appending_rows_while_the_run_waits_is_asked_each_item_once(tmp_path):
    """The expert adds one answer at a time to labels.csv (saving the whole file, as an editor does) and answers
    whatever pending.csv lists that the file does not hold yet. alexp reads partly answered files as they grow,
    archives only what it read, and the run ends with every answer given exactly once."""
    import threading
    import time

    queue, ids = tmp_path / "labels", np.arange(500, 620)
    asked: dict[int, int] = {}  # id -> times the expert answered it
    done = threading.Event()

    def expert_at_work():
        while not done.is_set():
            try:  # its own file first, then the list of what is still asked (alexp updates that list first)
                have = set(pl.read_csv(queue / "labels.csv")["id"].to_list()) if (queue / "labels.csv").exists() \
                    else set()
                todo = pl.read_csv(queue / "pending.csv")["id"].to_list()
            except (FileNotFoundError, pl.exceptions.NoDataError):
                time.sleep(0.002)
                continue
            new = [i for i in todo if i not in have]
            if new:
                i = new[0]
                asked[i] = asked.get(i, 0) + 1
                try:  # saved as an editor saves: the whole file, written aside, then renamed over the old one
                    text = (queue / "labels.csv").read_text()
                except FileNotFoundError:
                    text = "id,label\n"
                (queue / "labels.part").write_text(text + f"{i},{expert([i])[0]}\n")
                os.replace(queue / "labels.part", queue / "labels.csv")
            time.sleep(0.003)

    worker = threading.Thread(target=expert_at_work)
    worker.start()
    try:
        state = _waiting_loop(queue, tmp_path / "state.npz", ids).run(None)
    finally:
        done.set()
        worker.join()
    assert state.finished and state.n_labeled == 36
    twice = {i: n for i, n in asked.items() if n > 1}
    assert not twice, f"answered more than once: {twice}"
    rows = np.flatnonzero(state.labeled_in >= 0)
    assert state.labels[rows].tolist() == expert(ids[rows].tolist())  # every answer, as given
    archived = pl.concat([pl.read_csv(p, schema_overrides={"label": pl.String}) for p in (queue / "done").iterdir()])
    assert sorted(set(archived["id"].to_list())) == sorted(ids[rows].tolist())  # what was read is what was kept


def test_a_corrected_label_is_applied_and_said_in_one_line(tmp_path, caplog):
    from alexp.oracles import Files

    oracle = Files({"id": np.array([5, 6, 7, 8])}, queue_dir=str(tmp_path))
    oracle.resume(np.array([0, 1]), np.array([1, 0]))  # ids 5 and 6 accepted as 1 and 0
    oracle.request(np.array([2, 3]))
    answer(tmp_path, [5, 6, 7], ["0", "0", "1"])  # 5 corrected to 0, 6 given again unchanged, 7 answered
    assert oracle.collect() == {2: 1}
    assert oracle.corrections() == {0: 0} and oracle.corrections() == {}
    (line,) = [r.getMessage() for r in caplog.records if "corrected" in r.getMessage()]
    assert line.startswith("labels file: id 5 was accepted as 1; corrected to 0 (applied")
    oracle.commit()
    assert pending(tmp_path) == [8]  # only the item still unanswered is listed as pending
    assert not (tmp_path / "labels.csv").exists()  # read whole, so archived and removed


def test_the_loop_applies_a_correction_to_its_next_fit(tmp_path):
    queue, ids = tmp_path / "labels", np.arange(500, 620)
    loop = _waiting_loop(queue, tmp_path / "state.npz", ids)
    loop.oracle.wait = False
    state = loop.run(None)
    first = [int(ids[r]) for r in state.pending]
    answer(queue, first)
    state = loop.run(state)
    flipped = first[0]
    answer(queue, [flipped, *[int(ids[r]) for r in state.pending]],
           [str(1 - expert([flipped])[0]), *[str(x) for x in expert([int(ids[r]) for r in state.pending])]])
    state = loop.run(state)
    row = int(np.flatnonzero(ids == flipped)[0])
    assert state.labels[row] == 1 - expert([flipped])[0] and state.round == 1


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 7])
def test_a_run_killed_while_an_expert_writes_answers_keeps_all_of_them(tmp_path, k):
    """The run waits (oracle.wait=true) while the expert appends answers one by one; kill -9 right after the
    k-th; the same command resumed asks only for the items not answered, and the run ends with every answer."""
    import subprocess
    import sys
    import time

    from conftest import alexp_process, job_env

    queue = tmp_path / "labels"
    args = [*ARGS, f"oracle.queue_dir={queue}", "budget.rounds=1"]
    proc = subprocess.Popen([sys.executable, "-m", "alexp", *args, "oracle.wait=true", "oracle.poll_seconds=0.05"],
                            cwd=tmp_path, env=job_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (queue / "pending.csv").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    first = pending(queue)
    given = dict(zip(first[:k], expert(first[:k])))
    for i, (item, label) in enumerate(given.items()):
        fresh = not (queue / "labels.csv").exists()
        with open(queue / "labels.csv", "a") as f:
            f.write(("id,label\n" if fresh else "") + f"{item},{label}\n")
        time.sleep(0.03 * (i % 3))
    proc.kill()
    proc.wait(timeout=30)

    out = alexp_process(*args, cwd=tmp_path).stdout  # waits no more: takes what is there
    asked = pending(queue)
    assert f"waiting for {10 - k} labels" in out and sorted(asked) == sorted(first[k:])  # none asked twice
    answer(queue, asked)
    given.update(zip(asked, expert(asked)))
    alexp_process(*args, cwd=tmp_path)
    second = pending(queue)
    answer(queue, second)
    given.update(zip(second, expert(second)))
    assert "kappa by label count" in alexp_process(*args, cwd=tmp_path).stdout
    client, _, (run,) = runs(tmp_path)
    labeled = pl.read_parquet(client.download_artifacts(run.info.run_id, "labeled.parquet", str(tmp_path)))
    assert dict(zip(labeled["id"].to_list(), labeled["label"].to_list())) == given  # all k, as given
