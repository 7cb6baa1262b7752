"""The file collector as a separate process (`python -m collectors.files`), as a DaemonSet pod runs it,
configured from a Settings object through its environment variables."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from core.settings import Settings
from tests.support.polling import wait_for_sync
from tests.support.processes import ManagedProcess, base_env

ROOT = Path(__file__).resolve().parents[3]


def collector_process(settings: Settings, log_path: Path) -> ManagedProcess:
    cfg = settings.collector
    env = {"LOGWEAVE_KAFKA__BROKERS": settings.kafka.brokers,
           "LOGWEAVE_KAFKA__PARTITIONS": str(settings.kafka.partitions),
           "LOGWEAVE_COLLECTOR__PATHS": orjson.dumps(cfg.paths).decode(),
           "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(cfg.checkpoint_dir),
           "LOGWEAVE_COLLECTOR__METRICS_PORT": "0", "LOGWEAVE_COLLECTOR__NODE_NAME": cfg.node_name,
           "LOGWEAVE_COLLECTOR__RESCAN_INTERVAL": str(cfg.rescan_interval),
           "LOGWEAVE_COLLECTOR__CHECKPOINT_INTERVAL": str(cfg.checkpoint_interval),
           "LOGWEAVE_COLLECTOR__ROTATED_GRACE": str(cfg.rotated_grace),
           "LOGWEAVE_COLLECTOR__BUFFER_BYTES": str(cfg.buffer_bytes),
           "LOGWEAVE_COLLECTOR__SHUTDOWN_TIMEOUT": str(cfg.shutdown_timeout),
           "LOGWEAVE_COLLECTOR__LINGER": str(cfg.linger)}
    return ManagedProcess("collector", [sys.executable, "-m", "collectors.files"], base_env(env), log_path, ROOT)


def killer(procs: list[ManagedProcess], start: Callable[[], ManagedProcess], log_path: Path,
           kills: dict[tuple[int, str], bool]) -> Callable[[int, str], None]:
    """A writer's `during(rotation, step)` that SIGKILLs the last collector in `procs` at the steps in `kills`
    and starts another (appended to `procs`); where `kills` says True, the writer then waits until the
    new collector follows the files."""

    def following() -> int:
        return log_path.read_text().count("INFO collectors.files.collector: following")

    def during(rotation: int, step: str) -> None:  # the writer's thread, in the middle of a rotation
        if (rotation, step) not in kills:
            return
        procs[-1].kill()
        before = following()
        procs.append(start())
        if kills[(rotation, step)]:
            wait_for_sync(lambda: following() > before, what="the restarted collector to follow the files",
                          last_seen=following)

    return during
