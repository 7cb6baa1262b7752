"""Real syslog senders for the intake tests: util-linux `logger(1)` and Debian's rsyslog forwarding
(imtcp in, omfwd out over TCP with octet counting, or over TLS with a client certificate)."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

from commands.broker import free_port
from tests.support.servers import need


async def logger_send(port: int, message: str, *options: str) -> None:
    """`logger --server 127.0.0.1 --port PORT OPTIONS MESSAGE`; fails the test if logger fails."""
    argv = [need("logger", "apt-get install bsdutils"), "--server", "127.0.0.1", "--port", str(port), *options, message]
    process = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, f"logger failed: {err.decode()}"


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


@dataclass
class Rsyslog:
    process: subprocess.Popen[bytes]
    input_port: int
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


def start_rsyslog(workdir: Path, target_port: int, tls: TlsFiles | None = None) -> Rsyslog:
    """rsyslogd in the foreground: imtcp on a free port, every message forwarded to `target_port`."""
    binary = need("rsyslogd", "apt-get install rsyslog rsyslog-gnutls")
    workdir.mkdir(parents=True, exist_ok=True)
    input_port = free_port()
    if tls is None:
        out = (f'action(type="omfwd" target="127.0.0.1" port="{target_port}" protocol="tcp" '
               'TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")')
        globals_ = ""
    else:
        globals_ = (f'global(DefaultNetstreamDriverCAFile="{tls.ca}" DefaultNetstreamDriverCertFile="{tls.cert}" '
                    f'DefaultNetstreamDriverKeyFile="{tls.key}")')
        out = (f'action(type="omfwd" target="127.0.0.1" port="{target_port}" protocol="tcp" '
               'StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid" '
               'TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")')
    config = workdir / "rsyslog.conf"
    config.write_text(f'''global(workDirectory="{workdir}")
{globals_}
module(load="imtcp")
input(type="imtcp" port="{input_port}" address="127.0.0.1")
{out}
''')
    log = workdir / "rsyslogd.log"
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([binary, "-n", "-f", str(config), "-i", str(workdir / "rsyslogd.pid")],
                               stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    return Rsyslog(process, input_port, log)
