"""`logweave check-config` refuses configs that would only fail at run time, in one line naming the
setting, where its value came from, and what is allowed (issue 20, item 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commands.cli import main
from core.settings import Settings

MiB = 1024 * 1024


def run_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], environ: dict[str, str],
              config: str | None = None, tmp_path: Path | None = None) -> tuple[int, str]:
    """Run `logweave check-config` in-process with exactly `environ`; return (status, stderr)."""
    for key in list(__import__("os").environ):
        if key.startswith("LOGWEAVE_") or key in ("BATCH_SIZE", "BATCH_PERIOD", "NAMESPACE", "SELECTOR",
                                                  "ETCD_SERVERS", "TTL", "KAFKA_BROKERS"):
            monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    argv = ["check-config"]
    if config is not None:
        assert tmp_path is not None
        path = tmp_path / "logweave.yaml"
        path.write_text(config)
        argv = ["--config", str(path), "check-config"]
    status = main(argv)
    return status, capsys.readouterr().err


def assert_one_line(status: int, err: str, fragments: list[str]) -> None:
    assert status == 2, err
    line = err.strip()
    assert "\n" not in line, err
    assert line.startswith("logweave: invalid setting"), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


CASES: list[tuple[str, dict[str, str], str | None, list[str]]] = [
    ("empty brokers", {"LOGWEAVE_KAFKA__BROKERS": ""}, None,
     ["kafka.brokers", "(LOGWEAVE_KAFKA__BROKERS)", "host:port"]),
    ("empty brokers, seed name", {"KAFKA_BROKERS": " , "}, None, ["kafka.brokers", "(KAFKA_BROKERS)", "host:port"]),
    ("no sink enabled", {"LOGWEAVE_SINKS__ENABLED": "[]"}, None,
     ["sinks.enabled", "(LOGWEAVE_SINKS__ENABLED)", "at least one of file, etcd, elasticsearch, s3"]),
    ("no sink enabled, file", {}, "sinks:\n  enabled: []\n",
     ["sinks.enabled", "(config file ", "logweave.yaml)", "at least one of"]),
    ("api_key and username", {"LOGWEAVE_SINKS__ELASTICSEARCH__API_KEY": "s3cr3t-key",
                              "LOGWEAVE_SINKS__ELASTICSEARCH__USERNAME": "elastic"}, None,
     ["sinks.elasticsearch.api_key", "(LOGWEAVE_SINKS__ELASTICSEARCH__API_KEY)", "sinks.elasticsearch.username",
      "(LOGWEAVE_SINKS__ELASTICSEARCH__USERNAME)", "not both"]),
    ("empty etcd servers", {"ETCD_SERVERS": ""}, None, ["sinks.etcd.servers", "(ETCD_SERVERS)", "http://"]),
    ("empty etcd servers, prefixed", {"LOGWEAVE_SINKS__ETCD__SERVERS": ","}, None,
     ["sinks.etcd.servers", "(LOGWEAVE_SINKS__ETCD__SERVERS)"]),
    ("cert without key", {}, "sinks:\n  etcd:\n    cert_file: CERT\n",
     ["sinks.etcd.cert_file", "(config file ", "sinks.etcd.key_file", "both"]),
    ("missing ca_file (etcd)", {"LOGWEAVE_SINKS__ETCD__CA_FILE": "/nonexistent/ca.pem"}, None,
     ["sinks.etcd.ca_file", "(LOGWEAVE_SINKS__ETCD__CA_FILE)", "/nonexistent/ca.pem", "does not exist"]),
    ("missing ca_file (elasticsearch)", {}, "sinks:\n  elasticsearch:\n    ca_file: /nonexistent/es-ca.pem\n",
     ["sinks.elasticsearch.ca_file", "(config file ", "does not exist"]),
    ("duplicate rule names", {}, "routing:\n  rules:\n    - {name: errors, sinks: [file]}\n"
                                 "    - {name: errors, sinks: [file], mode: trace}\n",
     ["routing.rules.1.name", "(config file ", "'errors'", "unique"]),
    ("rule to a sink not enabled", {"LOGWEAVE_SINKS__ENABLED": "file"},
     "routing:\n  rules:\n    - {name: errors, sinks: [file, etcd]}\n",
     ["routing.rules.0.sinks", "(config file ", "etcd", "not enabled", "sinks.enabled"]),
    ("s3 part_size below 5 MiB", {"LOGWEAVE_SINKS__S3__PART_SIZE": "1"}, None,
     ["sinks.s3.part_size", "(LOGWEAVE_SINKS__S3__PART_SIZE)", "5MiB"]),
    ("BATCH_SIZE=0", {"BATCH_SIZE": "0"}, None, ["sinks.batch_size", "(BATCH_SIZE)", "= '0'"]),
    ("zero chunk bytes", {"LOGWEAVE_COLLECTOR__CHUNK_BYTES": "0"}, None,
     ["collector.chunk_bytes", "(LOGWEAVE_COLLECTOR__CHUNK_BYTES)", "more than 0"]),
    ("zero flush interval", {"LOGWEAVE_PODS__FLUSH_INTERVAL": "0s"}, None,
     ["pods.flush_interval", "(LOGWEAVE_PODS__FLUSH_INTERVAL)", "more than 0"]),
    ("nan duration", {"BATCH_PERIOD": "nan"}, None, ["sinks.batch_period", "(BATCH_PERIOD)", "finite"]),
]


@pytest.mark.parametrize(("environ", "config", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_config_refuses_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path, environ: dict[str, str], config: str | None,
                                          fragments: list[str]) -> None:
    if config is not None:
        config = config.replace("CERT", str(tmp_path / "client.pem"))
        (tmp_path / "client.pem").write_text("cert")
    status, err = run_check(monkeypatch, capsys, environ, config, tmp_path)
    assert_one_line(status, err, fragments)


def test_secrets_are_never_printed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run_check(monkeypatch, capsys, {"LOGWEAVE_SINKS__ELASTICSEARCH__API_KEY": "s3cr3t-key",
                                                  "LOGWEAVE_SINKS__ELASTICSEARCH__USERNAME": "elastic"})
    assert status == 2 and "s3cr3t-key" not in err


def test_a_sound_config_still_passes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    """The counterpart of every refusal above: the same settings, made consistent, are accepted."""
    (tmp_path / "ca.pem").write_text("ca")
    config = (f"sinks:\n  enabled: [file, etcd]\n  etcd:\n    ca_file: {tmp_path / 'ca.pem'}\n"
              f"    cert_file: {tmp_path / 'ca.pem'}\n    key_file: {tmp_path / 'ca.pem'}\n"
              "  s3:\n    part_size: 5MiB\nrouting:\n  rules:\n    - {name: errors, sinks: [file, etcd]}\n"
              "    - {name: slow, sinks: [etcd], mode: trace}\n")
    status, err = run_check(monkeypatch, capsys, {"BATCH_SIZE": "1", "LOGWEAVE_SINKS__ELASTICSEARCH__API_KEY": "k"},
                            config, tmp_path)
    assert status == 0, err


def _fields(kind: str) -> list[str]:
    """Dotted names of every setting whose annotation carries `kind` (a duration or size parser)."""
    out: list[str] = []

    def walk(model: Any, prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation, f"{prefix}{name}.")
            elif any(getattr(m, "func", None) is not None and getattr(m.func, "__name__", "") == kind
                     for m in field.metadata):
                out.append(prefix + name)

    walk(Settings, "")
    return out


DURATIONS = _fields("parse_duration")


def test_every_duration_field_is_found() -> None:
    assert len(DURATIONS) > 30 and "traces.gap" in DURATIONS and "kafka.linger" in DURATIONS


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
@pytest.mark.parametrize("dotted", DURATIONS)
def test_nan_and_inf_are_refused_for_every_duration(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], dotted: str,
                                                    value: str) -> None:
    variable = "LOGWEAVE_" + dotted.upper().replace(".", "__")
    status, err = run_check(monkeypatch, capsys, {variable: value})
    assert_one_line(status, err, [dotted, f"({variable})", "finite"])
