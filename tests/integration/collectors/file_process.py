"""The file collector as a separate process (`python -m collectors.files`), as a DaemonSet pod runs it,
configured from a Settings object through its environment variables."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from core.settings import Settings
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
