"""Real servers for sink tests, started on free loopback ports with fresh data dirs (docs/testing.md)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from commands.broker import free_port


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{binary} is not installed: `make test` installs it ({package})")
    return path


def wait_url(url: str, timeout: float, process: subprocess.Popen[bytes], method: str = "GET") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


@dataclass
class Server:
    """A started server process and its URL; `stop()` kills it, `start()` brings it back."""

    argv: list[str]
    url: str
    ready_path: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    ready_method: str = "GET"

    def start(self, timeout: float = 30.0) -> Server:
        handle = open(self.log, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(self.argv, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        wait_url(self.url + self.ready_path, timeout, self.process, self.ready_method)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def etcd_server(tmp: Path) -> Server:
    client, peer = free_port(), free_port()
    argv = [need("etcd", "apt-get install etcd-server"), "--name", "t", "--data-dir", str(tmp / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls",
            f"http://127.0.0.1:{client}", "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}", "--initial-cluster",
            f"t=http://127.0.0.1:{peer}", "--logger=zap"]
    return Server(argv, f"http://127.0.0.1:{client}", "/health", tmp / "etcd.log")


def moto_server(tmp: Path) -> Server:
    port = free_port()
    argv = [need("moto_server", "pip install 'moto[server]'"), "-H", "127.0.0.1", "-p", str(port)]
    return Server(argv, f"http://127.0.0.1:{port}", "/moto-api/", tmp / "moto.log")


def gcs_emulator(tmp: Path) -> Server:
    """gcp-storage-emulator (PyPI): the GCS JSON API in memory; clients reach it by `api_root`/endpoint URL."""
    port = free_port()
    argv = [need("gcp-storage-emulator", "pip install gcp-storage-emulator"), "start", "--host", "127.0.0.1",
            "--port", str(port), "--in-memory"]
    return Server(argv, f"http://127.0.0.1:{port}", "/storage/v1/b?project=logweave-test", tmp / "gcs.log")


def osmem_server(tmp: Path) -> Server:
    import osmem_server

    binary = Path(osmem_server.__file__).parent / "bin" / "osmem-server"
    if not binary.exists():
        pytest.fail("osmem-server has no binary: pip install osmem-server")
    port = free_port()
    return Server([str(binary), "-addr", f"127.0.0.1:{port}", "-no-stdin-watch"], f"http://127.0.0.1:{port}", "/",
                  tmp / "osmem.log")


def etcd_gateway(url: str, path: str, payload: dict[str, object], token: str | None = None,
                 timeout: float = 30.0) -> dict[str, object]:
    request = urllib.request.Request(url + path, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Authorization": token} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: dict[str, object] = json.loads(response.read())
        return body
