"""The terminal oracle driven by a scripted keyboard: labels, skip, undo, quit, resume."""

import re
import subprocess
import sys

import polars as pl
import pytest

from conftest import job_env, runs

ARGS = ["oracle=terminal", "data.n_rows=400", "budget.initial=4", "budget.batch_size=3", "budget.rounds=1",
        "progress=false"]


def type_keys(cwd, keys):
    proc = subprocess.run([sys.executable, "-m", "alexp", *ARGS], cwd=cwd, env=job_env(cwd), input=keys,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = [int(i) for i in re.findall(r"^item \d+ of \d+, round \d+ of \d+: id (\d+)", proc.stdout, re.MULTILINE)]
    return proc.stdout, shown


@pytest.mark.slow
def test_labels_skip_undo_quit_and_resume(tmp_path):
    # Items a b c d: a=1, b=0, (c shown) undo back to b, b=1, an unknown key on c, skip c, d=0.
    out, shown = type_keys(tmp_path, "1\n0\nu\n1\nx\ns\n0\n")
    a, b, c, b_again, c_again, c_asked_again, d = shown
    assert b_again == b and c_again == c_asked_again == c and len({a, b, c, d}) == 4
    assert "'x' is not a key here" in out and "waiting for 1 label:" in out

    out, shown = type_keys(tmp_path, "q\n")  # the skipped item comes back; quit at once
    assert shown == [c] and "waiting for 1 label:" in out

    out, shown = type_keys(tmp_path, "1\n0\n1\n0\n")  # c, then round 1's three items
    assert shown[0] == c and len(shown) == 4 and "kappa by label count" in out
    expected = {a: 1, b: 1, c: 1, d: 0, shown[1]: 0, shown[2]: 1, shown[3]: 0}

    client, _, (run,) = runs(tmp_path)
    labeled = pl.read_parquet(client.download_artifacts(run.info.run_id, "labeled.parquet", str(tmp_path)))
    assert dict(zip(labeled["id"].to_list(), labeled["label"].to_list())) == expected
    assert [m.step for m in client.get_metric_history(run.info.run_id, "kappa")] == [4, 7]
