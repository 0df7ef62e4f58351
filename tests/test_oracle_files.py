"""The files oracle as an expert uses it: label files between runs, rejected and partial files, resume."""

import numpy as np
import polars as pl
import pytest

from alexp.loop import LoopState

from test_cli import alexp, runs

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


@pytest.mark.slow
def test_an_expert_labels_through_files_across_runs(tmp_path):
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
    answer(queue, [second[0], *second])  # a duplicate id: rejected, the 10 accepted labels stay
    bad = alexp(*args, cwd=tmp_path, check=False)
    assert bad.returncode == 2 and f"duplicate ids: ['{second[0]}']" in bad.stderr
    state, got = saved_labels(tmp_path)
    assert state.round == 0 and len(got) == 10

    answer(queue, second)
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
