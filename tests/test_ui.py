"""`alexp ui` and what makes runs read well in MLflow: the saved chart view, names, descriptions, colours."""

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from alexp import mlflow_view as view
from alexp import tracking
from conftest import job_env, runs


def test_the_saved_view_puts_kappa_first_against_the_label_count_and_shows_every_run():
    state = view.view_state()
    charts = state["compareRunCharts"]
    assert [c["metricKey"] for c in charts][:3] == ["kappa", "average_precision", "f1"]
    assert len({c["uuid"] for c in charts}) == len(charts) == len(view.CURVES) + len(view.TIMERS)
    assert all(c["xAxisKey"] == "metric" and c["selectedXAxisMetricKey"] == "n_labels" for c in charts)
    sections = {s["uuid"]: s for s in state["compareRunSections"]}
    assert all(c["metricSectionId"] in sections for c in charts)
    assert state["runsHiddenMode"] == "SHOW_ALL" and state["selectedColumns"][0] == "metrics.`kappa`"
    tags = view.experiment_tags()
    assert json.loads(tags[f"mlflow.sharedViewState.{view.SHARE_KEY}"]) == state
    assert tags["mlflow.experiment.primaryMetric.name"] == "kappa"
    assert len(tags[f"mlflow.sharedViewState.{view.SHARE_KEY}"]) < 20_000  # MLflow's limit on an experiment tag


def test_the_second_saved_view_groups_the_runs_by_strategy_with_the_same_charts():
    every, grouped = view.view_state(), view.view_state(grouped=True)
    assert every["groupBy"] is None
    assert grouped["groupBy"] == {"aggregateFunction": "average",
                                  "groupByKeys": [{"mode": "param", "groupByData": "acquisition"}]}
    assert grouped["useGroupedValuesInCharts"] and grouped["compareRunCharts"] == every["compareRunCharts"]
    assert grouped["groupsExpanded"]["param.acquisition.margin"] is False  # the table lists the strategies
    tags = view.experiment_tags()
    assert json.loads(tags[f"mlflow.sharedViewState.{view.GROUPED_KEY}"]) == grouped


def test_the_address_opens_the_runs_in_the_chart_view_with_the_saved_view():
    url = view.url("http://127.0.0.1:5000/", "7")
    assert url.startswith("http://127.0.0.1:5000/#/experiments/7/runs?")
    for part in ("workflowType=machine_learning", "compareRunsMode=CHART", f"viewStateShareKey={view.SHARE_KEY}"):
        assert part in url
    assert view.opener("http://h:1/", "7", view.GROUPED_KEY, ["margin", "mine"]) == (
        "http://h:1/alexp/open?experiment=7&view=alexp-by-strategy&strategies=margin,mine")


def test_the_opening_page_gives_each_strategys_group_its_runs_colour_and_the_training_layout():
    from alexp.ui_app import flask_app

    client = flask_app.test_client()
    page = client.get("/alexp/open?experiment=7&view=alexp-by-strategy&strategies=margin,mine")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    script = re.search(r"Object\.entries\((\{.*?\})\)", text)
    colors = json.loads(script.group(1))
    assert colors["param.acquisition.margin"] == view.run_color("margin") == view.COLORS["margin"]
    assert colors["param.acquisition.mine"] == view.run_color("mine")  # a strategy alexp does not ship
    assert "if (!(group in colors))" in text  # a colour the user picked is kept
    assert 'localStorage.setItem("mlflow.workflowType_v1", JSON.stringify("machine_learning"))' in text
    assert f'location.replace({json.dumps(view.url("", "7", view.GROUPED_KEY))})' in text
    for bad in ("experiment=7;alert(1)&view=alexp-curves", "experiment=7&view=other",
                "experiment=7&strategies=a%22%29%3Balert(1)"):
        answer = client.get(f"/alexp/open?{bad}")
        assert answer.status_code == 400 and b"expected /alexp/open?experiment=<id>&view=" in answer.data


def test_a_strategy_keeps_its_colour_and_an_unknown_one_gets_a_stable_one():
    assert view.run_color("random") == "#7f7f7f" and view.run_color("margin") != view.run_color("entropy")
    assert view.run_color("my_strategy") == view.run_color("my_strategy")
    assert re.fullmatch(r"#[0-9a-f]{6}", view.run_color("my_strategy"))


def test_an_experiment_gets_the_view_tags_also_when_it_was_made_before(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.ensure_store(uri)
    client = tracking.client(uri)
    old = client.create_experiment("older")  # made by an earlier alexp, or by hand
    tracking.init_store(uri, "older")
    tags = client.get_experiment(old).tags
    assert {k: tags.get(k) for k in view.experiment_tags()} == view.experiment_tags()


@pytest.mark.slow
def test_runs_are_named_described_and_coloured_and_alexp_ui_serves_them(alexp, tmp_path):
    out = alexp("budget=small", "acquisition=margin", "seed=3", cwd=tmp_path).stdout
    assert "run " in out and "(margin-perfect-seed3-synthetic-identity): kappa by label count" in out
    assert "next: alexp ui" in out and "alexp report" in out
    _, exp, (run,) = runs(tmp_path)
    assert run.info.run_name == "margin-perfect-seed3-synthetic-identity"
    note = run.data.tags["mlflow.note.content"]
    assert "**margin**" in note and "10 labels, then 5 rounds of 10 (60 labels in all)" in note and "seed 3" in note
    assert run.data.tags["mlflow.runColor"] == view.COLORS["margin"]

    store = f"sqlite:///{tmp_path}/mlflow.db"
    server = subprocess.Popen([sys.executable, "-m", "alexp", "ui", "--tracking-uri", store, "--port", "5123"],
                              cwd=tmp_path, env=job_env(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in server.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        said = "".join(lines)
        assert said.startswith("alexp ui: starting the MLflow UI"), said
        opens = re.findall(r"127\.0\.0\.1:(\d+)/alexp/open\?experiment=(\d+)&view=([\w-]+)&strategies=(\S*)", said)
        assert [(exp_id, key, names) for _, exp_id, key, names in opens] == [
            (exp.experiment_id, view.SHARE_KEY, "margin"), (exp.experiment_id, view.GROUPED_KEY, "margin")], said
        url = re.search(r"http://127\.0\.0\.1:(\d+)/alexp/open\?\S+", said)
        with urllib.request.urlopen(url.group(0), timeout=10) as page:  # served by alexp's MLflow app
            assert f"/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning" in page.read().decode()
        api = f"http://127.0.0.1:{url.group(1)}/api/2.0/mlflow/experiments/get?experiment_id={exp.experiment_id}"
        with urllib.request.urlopen(api, timeout=10) as answer:
            tags = {t["key"]: t["value"] for t in json.load(answer)["experiment"]["tags"]}
        assert json.loads(tags["mlflow.sharedViewState.alexp-curves"]) == view.view_state()  # what the page reads
        with urllib.request.urlopen(f"http://127.0.0.1:{url.group(1)}/", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        server.terminate()  # SIGTERM: alexp ui stops its MLflow server too
        server.wait(timeout=30)
    time.sleep(1)
    with pytest.raises(OSError):  # nothing answers on that port any more
        urllib.request.urlopen(f"http://127.0.0.1:{url.group(1)}/health", timeout=5)

    bad = alexp("ui", "--tracking-uri", store, "--experiment", "nope", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "no experiment 'nope'" in bad.stderr and "'alexp'" in bad.stderr
    bad = alexp("ui", "--tracking-uri", f"sqlite:///{tmp_path}/none.db", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("alexp: error: no MLflow store at")
