"""TLS in front of the test broker: certificates from trustme and a real TLS terminator (stunnel4).

The chain is client --TLS--> stunnel --> KafkaFront (advertises stunnel's port) --> noida-db, so
every connection a client opens after bootstrap comes back through TLS (see kafka_front.py).
`mutual=True` makes stunnel demand a client certificate signed by the test CA (`verify = 2`).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import trustme

from commands.broker import free_port, stop_process_group, wait_for_port
from tests.support.servers import need


@dataclass
class TlsFiles:
    """PEM files of a test CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, directory: Path, name: str = "ca") -> TlsFiles:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        client = ca.issue_cert("logweave-client")
        files = cls(*(directory / f"{name}-{part}.pem" for part in
                      ("ca", "server-cert", "server-key", "client-cert", "client-key")))
        ca.cert_pem.write_to_path(str(files.ca))
        server.cert_chain_pems[0].write_to_path(str(files.server_cert))
        server.private_key_pem.write_to_path(str(files.server_key))
        client.cert_chain_pems[0].write_to_path(str(files.client_cert))
        client.private_key_pem.write_to_path(str(files.client_key))
        return files

    def client_env(self, mutual: bool = True) -> dict[str, str]:
        env = {"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SSL",
               "LOGWEAVE_KAFKA__SECURITY__CA_FILE": str(self.ca)}
        if mutual:
            env["LOGWEAVE_KAFKA__SECURITY__CERT_FILE"] = str(self.client_cert)
            env["LOGWEAVE_KAFKA__SECURITY__KEY_FILE"] = str(self.client_key)
        return env


@dataclass
class Stunnel:
    """A stunnel4 process terminating TLS on `port` and forwarding to `connect_port`."""

    files: TlsFiles
    connect_port: int
    workdir: Path
    mutual: bool = True
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Stunnel:
        self.port = self.port or free_port()
        config = self.workdir / f"stunnel-{self.port}.conf"
        verify = f"CAfile = {self.files.ca}\nverify = 2\n" if self.mutual else ""
        config.write_text(f"foreground = yes\npid =\ndebug = notice\n[kafka]\naccept = 127.0.0.1:{self.port}\n"
                          f"connect = 127.0.0.1:{self.connect_port}\ncert = {self.files.server_cert}\n"
                          f"key = {self.files.server_key}\n{verify}")
        log = open(self.workdir / f"stunnel-{self.port}.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen([need("stunnel4", "apt-get install stunnel4"), str(config)],
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port("127.0.0.1", self.port, 15)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, kill=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"
