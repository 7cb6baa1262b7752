"""What `make run` (`logweave run`) starts: the development pipeline as a list of parts.

Infrastructure (the embedded broker, the private PostgreSQL) starts first and stops last, so no
client ever logs a connection error at start or loses its broker while flushing at Ctrl-C; topics
are created once by one `logweave prepare` between the two phases; then the services start.
Each part says how to tell it is ready, so the launcher can print one summary when all are.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings

BIN = Path(sys.executable).parent
DEV_RULES = Path(__file__).resolve().parents[1] / "deploy" / "dev-rules.yaml"  # in a checkout: `make run`


@dataclass(frozen=True)
class Ports:
    """The ports the launcher owns (flags of `logweave run`); everything else comes from settings."""

    broker: int = 9092
    worker: int = 6066
    api: int = 8081
    postgres: int = 5433


@dataclass(frozen=True)
class Part:
    """One process: how to start it and how to know it is ready.

    Ready means: `ready_url` answers 200, or `ready_port` accepts a connection, or a line of its
    output contains `ready_line`; a part with none of them is ready once it runs."""

    name: str
    argv: list[str]
    infrastructure: bool = False
    one_shot: bool = False  # runs to completion (exit 0) before the services start
    ready_url: str | None = None
    ready_port: int | None = None
    ready_line: str | None = None
    stop_grace: float = 30.0  # seconds between SIGTERM and SIGKILL
    env: dict[str, str] = field(default_factory=dict)


def _logweave(*args: str) -> list[str]:
    return [str(BIN / "logweave"), *args]


def settings_environment(ports: Ports) -> dict[str, str]:
    """The LOGWEAVE_* variables every part gets so they agree with the launcher's ports."""
    return {"LOGWEAVE_KAFKA__BROKERS": f"127.0.0.1:{ports.broker}",
            "LOGWEAVE_WORKER__WEB_PORT": str(ports.worker),
            "LOGWEAVE_API__PORT": str(ports.api),
            "LOGWEAVE_API__URL": f"http://127.0.0.1:{ports.api}",
            "LOGWEAVE_SINKS__POSTGRES__DSN": postgres_dsn(ports)}  # the private PostgreSQL it starts


def postgres_dsn(ports: Ports) -> str:
    return f"postgresql://postgres@127.0.0.1:{ports.postgres}/logweave"


def parts(settings: Settings, ports: Ports, verbose: bool = False) -> list[Part]:
    """The development pipeline in start order."""
    broker_grace = 90.0  # noida-db writes its whole snapshot on SIGTERM (over 8 s per GB stored)
    stack = [Part("broker", _logweave("broker", "--port", str(ports.broker), "--data-dir", "var/broker",
                                      "--linger", "0"),
                  infrastructure=True, ready_port=ports.broker, stop_grace=broker_grace)]
    if "postgres" in settings.sinks.enabled:
        postgres = _logweave("postgres", "--data-dir", "var/postgres", "--port", str(ports.postgres))
        stack.append(Part("postgres", postgres,
                          infrastructure=True, ready_line="logweave postgres: serving", stop_grace=60.0))
    stack.append(Part("prepare", _logweave("prepare"), one_shot=True))
    if DEV_RULES.exists():  # the live rules (metrics from logs): edits of the file reach the worker while it runs
        stack.append(Part("rules", _logweave("rules", "watch", str(DEV_RULES), "--switch-after", "2")))
    worker_level = "info" if verbose else "warn"  # faust's banner and tables only when asked
    stack.append(Part("worker", [str(BIN / "faust"), "-A", "app", "worker", "-l", worker_level,
                                 "--web-port", str(ports.worker)],
                      ready_url=f"http://127.0.0.1:{ports.worker}/readyz"))
    stack.append(Part("api", _logweave("api", "--port", str(ports.api)),
                      ready_url=f"http://127.0.0.1:{ports.api}/healthz"))
    collector_metrics = settings.collector.metrics_port
    stack.append(Part("collector", _logweave("collect", "files", "--path", "var/demo/pods/*/*/*.log"),
                      ready_url=f"http://127.0.0.1:{collector_metrics}/metrics" if collector_metrics else None))
    intake_http = settings.intake.http_port
    stack.append(Part("intake", _logweave("intake"),
                      ready_url=f"http://127.0.0.1:{intake_http}/readyz" if intake_http else None))
    stack.append(Part("demo", _logweave("demo", "--dir", "var/demo/pods", "--rate", "200", "--pods", "10")))
    return stack


def load_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines skipped), as a Procfile runner reads them."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def apply_environment(env_file: Path | None, ports: Ports) -> None:
    """Set this process's environment (inherited by every part): the launcher's ports win, then
    variables already set, then the env file."""
    file_values = load_env_file(env_file) if env_file is not None else {}
    for key, value in file_values.items():
        os.environ.setdefault(key, value)
    os.environ.update(settings_environment(ports))
