"""Settings.from_env: embedded defaults, overrides, refusals that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Limits, Settings


def test_defaults_are_the_embedded_mode_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env({"WEIGHTSMITH_DATA_DIR": str(tmp_path / "data")})
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.database_url == f"sqlite:///{(tmp_path / 'data').resolve() / 'weightsmith.db'}"
    assert settings.broker_url == "filesystem://"
    assert settings.is_embedded_broker
    assert settings.broker_dir == (tmp_path / "data").resolve() / "broker"
    assert (settings.lease_timeout_s, settings.heartbeat_interval_s) == (60, 5)
    assert settings.commit_interval_s == 2.0
    assert settings.blas_threads is None
    assert settings.limits == Limits()


def test_every_variable_overrides_its_setting() -> None:
    env = {
        "WEIGHTSMITH_DATABASE_URL": "postgresql+psycopg://u@db/ws",
        "WEIGHTSMITH_BROKER_URL": "redis://cache:6379/0",
        "WEIGHTSMITH_LEASE_TIMEOUT_S": "90",
        "WEIGHTSMITH_HEARTBEAT_INTERVAL_S": "2",
        "WEIGHTSMITH_COMMIT_INTERVAL_S": "2.5",
        "WEIGHTSMITH_MAX_ATTEMPTS": "7",
        "WEIGHTSMITH_API_THREADS": "12",
        "WEIGHTSMITH_RECONCILE_INTERVAL_S": "11",
        "WEIGHTSMITH_QUEUED_GRACE_S": "13",
        "WEIGHTSMITH_BLAS_THREADS": "4",
        "WEIGHTSMITH_MAX_EPOCHS": "50",
        "WEIGHTSMITH_MAX_PREDICT_ROWS": "17",
        "WEIGHTSMITH_RATE_LIMIT": "5 per minute",
        "WEIGHTSMITH_AUTH_FAILURE_LIMIT": "3 per hour",
        "WEIGHTSMITH_BODY_TIMEOUT_S": "9",
        "WEIGHTSMITH_HEADER_TIMEOUT_S": "4",
        "WEIGHTSMITH_MAX_SPEC_BYTES": "4096",
        "WEIGHTSMITH_MAX_JSON_DEPTH": "16",
        "WEIGHTSMITH_API_CONNECTIONS": "300",
        "WEIGHTSMITH_MAX_LR_RANGE_STEPS": "40",
        "WEIGHTSMITH_WORKER_NICENESS": "7",
        "WEIGHTSMITH_ACCESS_LOG": "Yes",
    }
    s = Settings.from_env(env)
    assert (s.database_url, s.broker_url) == (env["WEIGHTSMITH_DATABASE_URL"],
                                              env["WEIGHTSMITH_BROKER_URL"])
    assert not s.is_embedded_broker
    assert (s.lease_timeout_s, s.heartbeat_interval_s, s.max_attempts) == (90, 2, 7)
    assert s.commit_interval_s == 2.5
    assert s.api_threads == 12
    assert (s.reconcile_interval_s, s.queued_grace_s, s.blas_threads) == (11, 13, 4)
    assert (s.limits.max_epochs, s.limits.max_predict_rows) == (50, 17)
    assert s.limits.rate_limit == "5 per minute"
    assert s.limits.auth_failure_limit == "3 per hour"
    assert (s.limits.body_timeout_s, s.limits.max_spec_bytes, s.limits.max_json_depth) == (
        9, 4096, 16)
    assert s.api_connections == 300
    assert s.limits.max_lr_range_steps == 40
    assert s.limits.header_timeout_s == 4
    assert s.worker_niceness == 7
    assert s.access_log and not Settings().access_log


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WEIGHTSMITH_LEASE_TIMEOUT_S", "soon", "must be an integer, got 'soon'"),
        ("WEIGHTSMITH_MAX_EPOCHS", "0", "must be positive, got 0"),
        ("WEIGHTSMITH_BLAS_THREADS", "-2", "must be positive, got -2"),
        ("WEIGHTSMITH_COMMIT_INTERVAL_S", "often", "must be a number, got 'often'"),
        ("WEIGHTSMITH_COMMIT_INTERVAL_S", "0", "must be positive, got 0"),
        ("WEIGHTSMITH_COMMIT_INTERVAL_S", "nan", "must be positive, got nan"),
        ("WEIGHTSMITH_WORKER_NICENESS", "20", "must be an integer from 0 to 19, got '20'"),
        ("WEIGHTSMITH_WORKER_NICENESS", "-5", "must be an integer from 0 to 19, got '-5'"),
        ("WEIGHTSMITH_ACCESS_LOG", "maybe",
         "must be one of 1, true, yes, on, 0, false, no, off; got 'maybe'"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env({name: value})
    assert str(info.value) == f"{name}: {message}"


def test_the_command_line_reports_a_bad_setting_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from service.cli import main

    monkeypatch.setenv("WEIGHTSMITH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WEIGHTSMITH_ACCESS_LOG", "maybe")
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err == ("weightsmith: WEIGHTSMITH_ACCESS_LOG: must be one of 1, true, yes, on, 0, "
                   "false, no, off; got 'maybe'\n")
    assert not any(tmp_path.iterdir())  # nothing started, nothing written
