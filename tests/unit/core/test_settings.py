"""Settings: sources, seed-tool names, durations, and one-line errors that name the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def test_defaults_are_the_embedded_setup() -> None:
    s = load_settings(environ={})
    assert s.kafka.brokers == "localhost:9092"
    assert s.sinks.enabled == ["file"]
    assert s.sinks.file.directory == Path("var/out")
    assert s.pods.namespace == "demo-system" and s.pods.selector == "app=snowplow"
    assert s.sinks.etcd.ttl == 48 * 3600


def test_seed_tool_names_unprefixed_with_durations() -> None:
    s = load_settings(environ={"BATCH_SIZE": "250", "BATCH_PERIOD": "5s", "NAMESPACE": "team-a",
                               "SELECTOR": "app=web", "ETCD_SERVERS": "http://a:2379,http://b:2379",
                               "TTL": "48h", "KAFKA_BROKERS": "k1:9092,k2:9092"})
    assert s.sinks.batch_size == 250 and s.sinks.batch_period == 5.0
    assert s.pods.namespace == "team-a" and s.pods.selector == "app=web"
    assert s.sinks.etcd.endpoints == ["http://a:2379", "http://b:2379"]
    assert s.sinks.etcd.ttl == 172800.0
    assert s.kafka.bootstrap_servers == ["k1:9092", "k2:9092"]


def test_prefixed_variables_win_over_seed_names_and_file(tmp_path: Path) -> None:
    config = tmp_path / "logweave.yaml"
    config.write_text("sinks:\n  batch_size: 10\n  enabled: [file, etcd]\ntraces:\n  gap: 1m\n")
    s = load_settings(config_file=config, environ={"BATCH_SIZE": "20", "LOGWEAVE_SINKS__BATCH_SIZE": "30"})
    assert s.sinks.batch_size == 30
    assert s.sinks.enabled == ["file", "etcd"]
    assert s.traces.gap == 60.0
    s = load_settings(config_file=config, environ={"BATCH_SIZE": "20"})
    assert s.sinks.batch_size == 20


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TTL": "two days"}, ["sinks.etcd.ttl", "'two days'", "48h"]),
        ({"LOGWEAVE_KAFKA__COMPRESSION": "snappy"}, ["kafka.compression", "'snappy'", "'lz4'", "'zstd'"]),
        ({"LOGWEAVE_SINKS__ENABLED": "file,hdfs"}, ["sinks.enabled", "hdfs", "elasticsearch"]),
        ({"LOGWEAVE_KAFKA__PARTITIONS": "0"}, ["kafka.partitions", "greater than or equal to 1"]),
        ({"BATCH_SIZE": "many"}, ["sinks.batch_size", "'many'", "integer"]),
        ({"LOGWEAVE_SINKS__ETCD__TIMEOUT": "1"}, ["sinks.etcd.timeout", "unknown setting"]),
        ({"LOGWEAVE_COLLECTOR__READ_FROM": "middle"}, ["collector.read_from", "'head'", "'tail'"]),
        ({"LOGWEAVE_SINKS__GCS__RESUMABLE_CHUNK": "300KiB"}, ["sinks.gcs.resumable_chunk", "multiples of 256KiB"]),
        ({"LOGWEAVE_SINKS__KAFKA__RECORD": "batch"}, ["sinks.kafka.record", "'line'", "'trace'"]),
    ],
)
def test_invalid_values_give_one_line_naming_setting_value_and_allowed(environ: dict[str, str],
                                                                        expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    message = str(info.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_the_pure_path_switch_is_not_taken_for_a_setting() -> None:
    """LOGWEAVE_PURE=1 (core/native.py) turns the C loops off in any process; its settings still load."""
    assert load_settings(environ={"LOGWEAVE_PURE": "1", "LOGWEAVE_KAFKA__PARTITIONS": "3"}).kafka.partitions == 3


def test_bad_config_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sinks: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_settings(config_file=bad, environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config_file=tmp_path / "missing.yaml", environ={})


def test_routing_rules_validated_from_file(tmp_path: Path) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text("routing:\n  rules:\n    - name: errors\n      sinks: [elastic]\n")
    with pytest.raises(ConfigError, match=r"routing\.rules\.0\.sinks.*unknown sink"):
        load_settings(config_file=config, environ={})


def test_check_config_cli_exits_2_with_one_line_and_masks_secrets(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TTL": "soon"}
    run = subprocess.run([sys.executable, "-m", "commands.cli", "check-config"], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert "sinks.etcd.ttl" in run.stderr and "'soon'" in run.stderr
    env = {"PATH": "/usr/bin:/bin", "LOGWEAVE_SINKS__ETCD__PASSWORD": "hunter2",
           "LOGWEAVE_SINKS__POSTGRES__DSN": "postgresql://lw:pg-secret@db:5432/logs",
           "LOGWEAVE_SINKS__POSTGRES__PASSWORD": "pg-password", "LOGWEAVE_API__TOKEN": "api-token"}
    run = subprocess.run([sys.executable, "-m", "commands.cli", "check-config"], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "hunter2" not in run.stdout and "\"password\": \"********\"" in run.stdout
    for secret in ("hunter2", "pg-secret", "pg-password", "api-token"):
        assert secret not in run.stdout


@pytest.mark.parametrize(("environ", "secret"), [
    ({"LOGWEAVE_SINKS__ETCD__SERVERS": "http://root:hunter2@etcd:2379", "LOGWEAVE_SINKS__ETCD__PASSWORD": "pw-1",
      "LOGWEAVE_SINKS__ETCD__CERT_FILE": "/c.pem"}, ["hunter2", "pw-1"]),  # a group-level error echoes the group
    ({"LOGWEAVE_SINKS__ELASTICSEARCH__API_KEY": "key-123", "LOGWEAVE_SINKS__ELASTICSEARCH__USERNAME": "u",
      "LOGWEAVE_SINKS__ELASTICSEARCH__PASSWORD": "pw-2"}, ["key-123", "pw-2"]),
    ({"LOGWEAVE_SINKS__ELASTICSEARCH__AWS_SECRET_ACCESS_KEY": "aws-3"}, ["aws-3"]),
])
def test_error_lines_never_echo_a_secret(environ: dict[str, str], secret: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    message = str(info.value)
    assert message.startswith("invalid setting sinks.")  # names the setting, and shows no secret value
    for value in secret:
        assert value not in message


def test_check_config_masks_passwords_inside_urls(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from commands.cli import main

    monkeypatch.setenv("LOGWEAVE_SINKS__ETCD__SERVERS", "https://root:hunter2@etcd-0:2379,https://etcd-1:2379")
    monkeypatch.setenv("LOGWEAVE_SINKS__ELASTICSEARCH__URL", "https://logweave:es-pass@search:9200")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "es-pass" not in out
    assert "https://root:********@etcd-0:2379,https://etcd-1:2379" in out and "logweave:********@search" in out



def test_postgres_secrets_come_from_files_and_an_unreadable_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "dsn").write_text("postgresql://lw@db/logs\n")
    (tmp_path / "password").write_text("s3cret\n")
    settings = load_settings(environ={"LOGWEAVE_SINKS__POSTGRES__DSN_FILE": str(tmp_path / "dsn"),
                                      "LOGWEAVE_SINKS__POSTGRES__PASSWORD_FILE": str(tmp_path / "password")})
    assert settings.sinks.postgres.resolved_dsn() == "postgresql://lw@db/logs"
    assert settings.sinks.postgres.resolved_password() == "s3cret"
    missing = load_settings(environ={"LOGWEAVE_SINKS__POSTGRES__PASSWORD_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match=r"sinks\.postgres\.password_file .*cannot read it"):
        missing.sinks.postgres.resolved_password()


def test_api_token_hashes_must_be_sha256_digests() -> None:
    assert load_settings(environ={"LOGWEAVE_API__TOKEN_HASHES": "AB" * 32}).api.token_hashes == ["ab" * 32]
    with pytest.raises(ConfigError, match=r"api\.token_hashes .*not a sha256 hex digest"):
        load_settings(environ={"LOGWEAVE_API__TOKEN_HASHES": "my-plain-token"})
