"""Every bad input ends with exit code 2 and one line that names the setting or file and the fix; nothing it
leaves behind trips the corrected command. `alexp` runs in-process here (the CLI's own entry point), so the
table stays fast; tests/test_cli.py runs it as a subprocess."""

import sys

import polars as pl
import pytest

from alexp import cli

SMALL = ["budget=small", "progress=false"]


def alexp_in_process(args, cwd, monkeypatch, capsys):
    """(exit code, stdout, stderr) of `alexp *args` run in `cwd` with its own store and state folder."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{cwd}/mlflow.db")
    monkeypatch.setenv("ALEXP_STATE_DIR", str(cwd / "state"))
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # alexp must not depend on it
    monkeypatch.setattr(sys, "argv", ["alexp", *args])
    capsys.readouterr()
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def write(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def csv_text(n=100, label=lambda i: i % 2):
    return "text,label\n" + "".join(f"item number {i},{label(i)}\n" for i in range(n))


def file_args(path, *extra, text_column="text", features="tfidf"):
    return ["data=file", f"data.path='{path}'", "data.label_column=label", f"data.text_column={text_column}",
            f"features={features}", *extra]


# name -> (setup(tmp) -> args, expected text of the one line)
BAD_INPUTS = {
    # the command line and the config
    "unknown option": (lambda d: ["acquisition=nope"], "acquisition=nope: no such option"),
    "unknown option, close to one": (lambda d: ["acquisition=marginn"], "did you mean acquisition=margin?"),
    "misspelt group": (lambda d: ["acquisiton=margin"], "did you mean acquisition?"),
    "misspelt key without +": (lambda d: ["budget.batch_sise=5"], "did you mean budget.batch_size?"),
    "misspelt key with +": (lambda d: ["+budget.batch_sise=5"], "did you mean budget.batch_size?"),
    "unparsable override": (lambda d: ["seed=[1"], "cannot parse the command line"),
    "unquoted brackets in a value": (lambda d: ["data=file", "data.path=a[1].csv"], "put quotes around values"),
    "unknown interpolation": (lambda d: ["budget.rounds=${nope}"], "budget.rounds: Interpolation key 'nope'"),
    "negative seed": (lambda d: ["seed=-1"], "seed must be a non-negative integer, got -1"),
    "text seed": (lambda d: ["seed=abc"], "seed must be a non-negative integer, got 'abc'"),
    "fractional seed": (lambda d: ["seed=1.5"], "seed must be a non-negative integer, got 1.5"),
    "unknown store scheme": (lambda d: ["tracking.uri=foo://bar"], "tracking.uri='foo://bar' is not a store"),
    "store folder missing": (lambda d: [f"tracking.uri=sqlite:///{d}/no/such/mlflow.db"], "does not exist"),
    "empty experiment name": (lambda d: ["tracking.experiment_name="], "tracking.experiment_name must be a non-empty"),
    "state_dir is a file": (lambda d: [f"state_dir={write(d / 'f', 'x')}"], "is a file, not a folder"),
    "zero threads": (lambda d: ["threads=0"], "threads must be a positive number or auto, got 0"),
    "negative batch size": (lambda d: ["budget.batch_size=-5"], "batch_size must be a positive integer, got -5"),
    "eval share above 1": (lambda d: ["budget.eval_share=1.5"], "eval_share must be in [0, 1), got 1.5"),
    "stratified start of one": (lambda d: ["budget.initial=1"], "budget.initial=1 cannot hold one item of each"),
    "budget above the pool": (lambda d: ["data.n_rows=50", "budget=default"], "labels exceed the pool of 40 rows"),
    "required value unset": (lambda d: ["data=file"], "data.path is required"),
    "test share of 2": (lambda d: ["data.test_size=2"], "test_size must be a fraction strictly between 0 and 1"),
    "zero max_candidates": (lambda d: ["acquisition.max_candidates=0"], "max_candidates must be a positive"),
    "bald without samples": (lambda d: ["acquisition=bald", "model=logreg"], "needs posterior samples"),
    "transformer on numbers": (lambda d: ["model=transformer", "acquisition=margin"], "reads raw texts"),
    "negative unlabeled rows": (lambda d: ["model=self_trained", "model.max_unlabeled=-5"],
                                "model: max_unlabeled must be a whole number >= 0, got -5"),
    "pseudo-label threshold 2": (lambda d: ["model=self_trained", "model.threshold=2"], "threshold must be in (0, 1]"),
    "a grid value not a list": (lambda d: ["model=logreg_retuned", "model.param_grid.C=5"],
                                "param_grid.C must be a non-empty list of values, got 5"),
    "a grid of another model": (lambda d: ["model=logreg_retuned", "~model.param_grid.C",
                                           "+model.param_grid.depth=[1]"],
                                "param_grid: 'depth' is not a parameter of LogisticRegression"),
    "greedy bound, no candidates": (lambda d: ["acquisition=greedy_oracle", "acquisition.random_batches=0",
                                               "acquisition.uncertain_batches=0"],
                                    "random_batches + uncertain_batches must be at least 1"),
    "greedy bound, a person's oracle": (lambda d: ["acquisition=greedy_oracle", "oracle=files"],
                                        "acquisition=greedy_oracle reads the data's labels"),
    # the data file
    "missing file": (lambda d: file_args(d / "absent.csv"), "data file not found"),
    "path is a folder": (lambda d: file_args(d), "is a folder; point it at a .parquet, .csv or .tsv file"),
    "unsupported suffix": (lambda d: file_args(write(d / "a.txt", csv_text())), "unsupported data file type"),
    "empty csv": (lambda d: file_args(write(d / "e.csv", b"")), "is empty"),
    "header only": (lambda d: file_args(write(d / "h.csv", "text,label\n")), "has a header but no rows"),
    "latin-1 csv": (lambda d: file_args(write(d / "l.csv", csv_text().replace("item", "caf\u00e9").encode("latin-1"))),
                    "save it as UTF-8"),
    "unterminated quote": (lambda d: file_args(write(d / "q.csv", csv_text() + '"never closed,1\n' + csv_text(900))),
                           "cannot read"),
    "list-typed text column": (lambda d: file_args(_parquet(d, text=[["a", "b"]] * 100)), "holds List"),
    "list-typed label column": (lambda d: file_args(_parquet(d, label=[[0], [1]] * 50)), "holds List"),
    "numeric text column": (lambda d: file_args(_parquet(d, text=list(range(100)))), "not text"),
    "corrupt parquet": (lambda d: file_args(write(d / "c.parquet", b"PAR1 not really")), "cannot read"),
    "a path with [1] is taken literally": (lambda d: file_args(_bracket_files(d)), "data file not found"),
    "single class": (lambda d: file_args(write(d / "s.csv", csv_text(label=lambda i: 0))), "needs both classes"),
    "30 rows, default budget": (lambda d: file_args(write(d / "m.csv", csv_text(30)), "budget=default"),
                                "220 labels exceed the pool of 24 rows"),
    "missing column": (lambda d: file_args(write(d / "ok.csv", csv_text()), text_column="nope"),
                       "column 'nope' not in ok.csv"),
    "empty texts": (lambda d: file_args(write(d / "x.csv", csv_text().replace("item number 4,", ","))),
                    "has 1 null or empty texts"),
    "three classes": (lambda d: file_args(write(d / "3.csv", csv_text(label=lambda i: i % 3))),
                      "values outside classes [0, 1]: [2]"),
    "text features on identity": (lambda d: file_args(write(d / "ok.csv", csv_text()), features="identity"),
                                  "features=tfidf or features=minilm"),
    # the files oracle's queue
    "labels/done is a file": (lambda d: ["oracle=files", f"oracle.queue_dir={_queue(d, done_file=True)}"],
                              "done should be a folder"),
    "pending.csv is a folder": (lambda d: ["oracle=files", f"oracle.queue_dir={_queue(d, pending_dir=True)}"],
                                "pending.csv should be a file"),
    # the report
    "report without a store": (lambda d: ["report", "--tracking-uri", f"sqlite:///{d}/none.db"], "no MLflow store"),
    "report of an unknown experiment": (lambda d: ["report", "--experiment", "nope", "--tracking-uri", _store(d)],
                                        "no experiment 'nope'"),
    "report of an empty sweep folder": (lambda d: ["report", "--sweep-dir", str(d), "--tracking-uri", _store(d)],
                                        "no finished alexp runs"),
}


def _store(d):
    from alexp import tracking

    uri = f"sqlite:///{d}/store.db"
    tracking.init_store(uri, "alexp")
    return uri


def _parquet(d, text=None, label=None):
    frame = pl.DataFrame({"text": text or [f"t {i}" for i in range(100)],
                          "label": label or [i % 2 for i in range(100)]})
    path = d / "p.parquet"
    frame.write_parquet(path)
    return path


def _bracket_files(d):
    write(d / "data1.csv", csv_text())  # what a glob 'data[1].csv' would match
    return d / "data[1].csv"


def _queue(d, done_file=False, pending_dir=False):
    q = d / "labels"
    q.mkdir()
    if done_file:
        write(q / "done", "x")
    if pending_dir:
        (q / "pending.csv").mkdir()
    return q


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_leaves_nothing_behind(case, tmp_path, monkeypatch, capsys):
    setup, expected = BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    args = setup(tmp_path)
    if args[0] != "report":
        args = [*SMALL, *([] if "data=file" in args else ["data.n_rows=2000"]), *args]
    code, out, err = alexp_in_process(args, work, monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith(("alexp: error: ", "alexp report: error: ")), err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert not list(work.glob("state/*.npz"))  # no checkpoint for a rerun to resume
    db = work / "mlflow.db"
    if db.exists():  # a store may be made early; it holds no run
        import mlflow

        c = mlflow.MlflowClient(f"sqlite:///{db}")
        assert not c.search_runs([e.experiment_id for e in c.search_experiments()])


def test_there_are_at_least_35_bad_inputs():
    assert len(BAD_INPUTS) >= 35


def test_a_corrected_rerun_after_bad_data_runs(tmp_path, monkeypatch, capsys):
    bad = write(tmp_path / "d.csv", csv_text(label=lambda i: 0))
    code, _, err = alexp_in_process([*file_args(bad), *SMALL], tmp_path, monkeypatch, capsys)
    assert code == 2 and "needs both classes" in err
    write(bad, csv_text(200))
    code, out, err = alexp_in_process([*file_args(bad), *SMALL], tmp_path, monkeypatch, capsys)
    assert code == 0 and "kappa by label count" in out, err


def test_a_tracking_server_that_is_down_is_one_line(tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import time

    started = time.monotonic()  # with MLflow's own retries (minutes of silence before alexp looked first)
    code, _, err = alexp_in_process([*SMALL, "data.n_rows=2000", f"tracking.uri=http://u:pw12345678@127.0.0.1:{port}"],
                                    tmp_path, monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "cannot reach the MLflow server" in lines[0], err
    assert "(Connection refused)" in lines[0] and "pw12345678" not in err
    assert time.monotonic() - started < 10


def test_a_key_set_twice_is_logged_with_the_value_used(tmp_path, monkeypatch, capsys):
    import mlflow

    code, _, err = alexp_in_process([*SMALL, "data.n_rows=50", "data.n_rows=2000"], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("alexp").experiment_id])
    assert run.data.params["data.n_rows"] == "2000"
