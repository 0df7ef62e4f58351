"""Credentials are masked wherever alexp writes or says something."""

import logging

from alexp.secrets import MASK, RedactingFilter, guard, redact


def test_url_credentials_query_secrets_and_secret_keys_are_masked(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-123456")
    assert redact("http://bob:hunter2@ls:8080/x") == f"http://bob:{MASK}@ls:8080/x"
    assert redact(r"oracle.url=http\://bob\:hunter2@ls\:8080") == rf"oracle.url=http\://bob\:{MASK}@ls\:8080"
    assert redact("postgresql://u:pw@db/mlflow") == f"postgresql://u:{MASK}@db/mlflow"
    assert redact("https://h/api?access_token=abc&page=2") == f"https://h/api?access_token={MASK}&page=2"
    assert redact("header tok-123456 sent") == f"header {MASK} sent"  # a secret environment variable's value
    nested = {"oracle": {"url": "http://a:b@h", "api_key": "k", "token_env": "LABEL_STUDIO_API_KEY"}, "seed": 3,
              "list": ["s3://id:key@bucket/x"]}
    assert redact(nested) == {"oracle": {"url": f"http://a:{MASK}@h", "api_key": MASK,
                                         "token_env": "LABEL_STUDIO_API_KEY"},
                              "seed": 3, "list": [f"s3://id:{MASK}@bucket/x"]}
    for harmless in ("sqlite:///mlflow.db", "http://localhost:5000", "file:./mlruns", "a:b", "user@example.com"):
        assert redact(harmless) == harmless


def test_log_records_and_hydra_files_are_masked(tmp_path):
    record = logging.LogRecord("httpx", logging.INFO, "", 0, "HTTP Request: GET %s", ("http://u:pw@h/api",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == f"HTTP Request: GET http://u:{MASK}@h/api"
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- oracle.url=http://u:pw@h\n- seed=1\n")
    guard(tmp_path)
    assert (tmp_path / ".hydra" / "overrides.yaml").read_text() == f"- oracle.url=http://u:{MASK}@h\n- seed=1\n"
