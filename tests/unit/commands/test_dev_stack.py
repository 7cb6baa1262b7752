"""The development pipeline's parts, their order, and the environment they share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from commands.dev_stack import Ports, apply_environment, load_env_file, parts
from core.settings import load_settings


def test_env_file_reads_pairs_and_refuses_a_line_without_equals(tmp_path: Path) -> None:
    good = tmp_path / "good.env"
    good.write_text("# comment\n\nA=1\nB = 'two'\n")
    assert load_env_file(good) == {"A": "1", "B": "two"}
    bad = tmp_path / "bad.env"
    bad.write_text("A=1\nJUSTAWORD\n")
    with pytest.raises(ValueError, match=r"bad.env:2: expected KEY=VALUE"):
        load_env_file(bad)


def test_set_variables_win_over_the_file_and_the_launchers_ports_win_over_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "dev.env"
    env_file.write_text("LOGWEAVE_SINKS__ENABLED=file,postgres\nLOGWEAVE_TRACES__GAP=9s\n"
                        "LOGWEAVE_KAFKA__BROKERS=elsewhere:9092\n")
    monkeypatch.setenv("LOGWEAVE_TRACES__GAP", "5s")
    for name in ("LOGWEAVE_SINKS__ENABLED", "LOGWEAVE_KAFKA__BROKERS", "LOGWEAVE_SINKS__POSTGRES__DSN",
                 "LOGWEAVE_WORKER__WEB_PORT", "LOGWEAVE_API__PORT", "LOGWEAVE_API__URL"):
        monkeypatch.delenv(name, raising=False)
    apply_environment(env_file, Ports(broker=1111, postgres=2222, worker=3333, api=4444))
    assert os.environ["LOGWEAVE_TRACES__GAP"] == "5s"
    assert os.environ["LOGWEAVE_SINKS__ENABLED"] == "file,postgres"
    assert os.environ["LOGWEAVE_KAFKA__BROKERS"] == "127.0.0.1:1111"
    assert os.environ["LOGWEAVE_SINKS__POSTGRES__DSN"].endswith("@127.0.0.1:2222/logweave")
    assert os.environ["LOGWEAVE_WORKER__WEB_PORT"] == "3333"


def test_infrastructure_first_one_prepare_then_services() -> None:
    with_postgres = parts(load_settings(sinks={"enabled": ["file", "postgres"]}), Ports())
    names = [p.name for p in with_postgres]
    assert names[:3] == ["broker", "postgres", "prepare"]
    assert [p.name for p in with_postgres if p.infrastructure] == ["broker", "postgres"]
    assert [p.name for p in with_postgres if p.one_shot] == ["prepare"]
    without = [p.name for p in parts(load_settings(sinks={"enabled": ["file"]}), Ports())]
    assert "postgres" not in without
    worker = next(p for p in with_postgres if p.name == "worker")
    assert worker.argv[worker.argv.index("-l") + 1] == "warn"
    verbose_worker = next(p for p in parts(load_settings(), Ports(), verbose=True) if p.name == "worker")
    assert verbose_worker.argv[verbose_worker.argv.index("-l") + 1] == "info"


def test_the_procfile_runs_the_same_parts_as_logweave_run() -> None:
    """The Procfile (for process managers) and `logweave run` must not drift apart."""
    procfile = Path(__file__).resolve().parents[3] / "Procfile"
    entries = [line.split(":", 1)[0] for line in procfile.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    launched = [p.name for p in parts(load_settings(sinks={"enabled": ["file", "postgres"]}), Ports())
                if not p.one_shot]
    assert sorted(entries) == sorted(launched)
