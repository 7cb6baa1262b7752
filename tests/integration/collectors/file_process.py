"""Run the file collector as a separate process (`python -m collectors.files`), as a DaemonSet pod does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from core.settings import Settings


class CollectorProcess:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        cfg = settings.collector
        self.env = {**os.environ, "LOGWEAVE_KAFKA__BROKERS": settings.kafka.brokers,
                    "LOGWEAVE_KAFKA__PARTITIONS": str(settings.kafka.partitions),
                    "LOGWEAVE_COLLECTOR__PATHS": orjson.dumps(cfg.paths).decode(),
                    "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(cfg.checkpoint_dir),
                    "LOGWEAVE_COLLECTOR__METRICS_PORT": "0", "LOGWEAVE_COLLECTOR__NODE_NAME": cfg.node_name,
                    "LOGWEAVE_COLLECTOR__RESCAN_INTERVAL": str(cfg.rescan_interval),
                    "LOGWEAVE_COLLECTOR__CHECKPOINT_INTERVAL": str(cfg.checkpoint_interval),
                    "LOGWEAVE_COLLECTOR__ROTATED_GRACE": str(cfg.rotated_grace),
                    "LOGWEAVE_COLLECTOR__BUFFER_BYTES": str(cfg.buffer_bytes),
                    "LOGWEAVE_COLLECTOR__SHUTDOWN_TIMEOUT": str(cfg.shutdown_timeout)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        out = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen([sys.executable, "-m", "collectors.files"], env=self.env, stdout=out,
                                        stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[3])
        out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def status(self, field: str) -> int:
        """A /proc/<pid>/status figure in KiB (VmRSS, VmHWM)."""
        for row in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if row.startswith(field + ":"):
                return int(row.split()[1])
        raise KeyError(field)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))
