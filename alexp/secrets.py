"""Keep credentials out of MLflow, logs and messages: `redact` masks them in strings and nested configs."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

MASK = "***"
# user:password@ in any URL; ?token=... style query values; keys whose name says they hold a secret.
_URL_CREDENTIALS = re.compile(  # Hydra prints overrides with ':' escaped as '\:'
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*\\?://)(?P<user>[^/\s:@\\]*)(?P<colon>\\?:)(?P<password>[^/\s@]+)@")
_URL_TOKEN = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*\\?://)(?P<token>[^/\s:@\\]+)@")  # http://TOKEN@host
_QUERY_SECRET = re.compile(r"(?i)([?&](?:[a-z_]*(?:token|key|secret|password|passwd|pwd|auth)[a-z_]*)=)[^&\s'\"]+")
SECRET_NAME = re.compile(r"(?i)(token|api_?key|secret|password|passwd|credential|authorization)")


def environment() -> dict[str, str]:
    """A snapshot of the environment that another thread may change meanwhile (MLflow's telemetry thread deletes
    a variable of its own): iterating `os.environ` itself raises KeyError when a key goes between its listing and
    its lookup."""
    snapshot = {}
    for key in list(os.environ):  # the key list is copied in one step
        value = os.environ.get(key)
        if value is not None:
            snapshot[key] = value
    return snapshot


def _secret_env_values() -> list[str]:
    """Values of environment variables whose names say they are secrets (at least 8 characters: not `true`)."""
    return sorted((v for k, v in environment().items() if SECRET_NAME.search(k) and len(v) >= 8), key=len,
                  reverse=True)


def _holds_secret(key: Any) -> bool:
    """A setting named like a secret (api_key, token, password), not one naming where it lives (token_env)."""
    return bool(SECRET_NAME.search(str(key))) and not str(key).endswith("_env")


def redact(value: Any) -> Any:
    """`value` with credentials masked: URL passwords (and a URL's user part without one, which is how a token is
    given: `http://TOKEN@host`), secret-looking query values, the values of secret
    environment variables, and (in dicts) every value under a key named like a secret (api_key, token, ...)."""
    if isinstance(value, dict):
        return {k: (MASK if _holds_secret(k) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if not isinstance(value, str):
        return value
    value = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}{m['colon']}{MASK}@", value)
    value = _URL_TOKEN.sub(lambda m: f"{m['scheme']}{MASK}@", value)
    value = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, value)
    for secret in _secret_env_values():
        value = value.replace(secret, MASK)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in every record (an HTTP client logs the URLs it calls)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def _redact_log_records() -> None:
    """Mask every log record as it is made. A record factory, not a handler filter: Hydra's launchers configure
    logging anew (new handlers) right before they log each job's overrides."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def redacting(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            RedactingFilter().filter(record)
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is the handler's to report
            pass
        return record

    redacting.redacts = True
    logging.setLogRecordFactory(redacting)


def guard(*folders: str | Path) -> None:
    """Mask credentials from here on in every log record, and in the command lines Hydra recorded in
    `folders` (a job's .hydra/overrides.yaml, config.yaml and hydra.yaml; a sweep's multirun.yaml)."""
    _redact_log_records()
    for path in (p for folder in folders for p in [*Path(folder, ".hydra").glob("*.yaml"),
                                                   Path(folder, "multirun.yaml")] if p.is_file()):
        text = path.read_text()
        clean = redact(text)
        if clean != text:
            path.write_text(clean)
