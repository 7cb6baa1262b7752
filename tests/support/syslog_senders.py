"""Real syslog senders for the intake tests: util-linux `logger(1)`, Debian's rsyslog forwarding
(imtcp in, omfwd out over TCP with octet counting, or over TLS with a client certificate), and
Debian's syslog-ng (syslog() and network() destinations). rsyslog and syslog-ng conflict as Debian
packages, so syslog-ng runs from its package unpacked under tests/support/syslog-ng (`make
test-clients` does that with `apt-get download` and `dpkg -x`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from commands.broker import free_port
from tests.support.servers import need

SYSLOG_NG_ROOT = Path(__file__).parent / "syslog-ng"


async def logger_send(port: int, message: str, *options: str) -> None:
    """`logger --server 127.0.0.1 --port PORT OPTIONS MESSAGE`; fails the test if logger fails."""
    argv = [need("logger", "apt-get install bsdutils"), "--server", "127.0.0.1", "--port", str(port), *options, message]
    process = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, f"logger failed: {err.decode()}"


async def logger_send_lines(port: int, messages: list[str], *options: str, pace: float = 0.0) -> None:
    """`logger` reading `messages` from stdin: one syslog message per line, on one connection (TCP);
    with `pace`, stdin gets one line every `pace` seconds (a sender that logs steadily)."""
    argv = [need("logger", "apt-get install bsdutils"), "--server", "127.0.0.1", "--port", str(port), *options]
    process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdin is not None
    for message in messages:
        process.stdin.write(message.encode() + b"\n")
        await process.stdin.drain()
        if pace:
            await asyncio.sleep(pace)
    process.stdin.close()
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
    return run_rsyslog(workdir, globals_, out)


def start_rsyslog_kafka(workdir: Path, bootstrap: str, topic: str) -> Rsyslog:
    """rsyslogd in the foreground: imtcp on a free port, every message produced to Kafka by omkafka
    (one Kafka message per syslog message, librdkafka's defaults: acks=all, 5 ms linger).

    Debian's librdkafka cannot talk to the test brokers, so omkafka runs with the librdkafka that the
    confluent-kafka wheel bundles, found through LD_LIBRARY_PATH."""
    need("rsyslogd", "apt-get install rsyslog rsyslog-kafka")
    import confluent_kafka

    bundled = sorted((Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs").glob("librdkafka*.so.1"))
    if not bundled:
        pytest.fail("the confluent-kafka wheel bundles no librdkafka (pip install confluent-kafka)")
    libdir = workdir / "librdkafka"
    libdir.mkdir(parents=True, exist_ok=True)
    link = libdir / "librdkafka.so.1"
    if not link.exists():
        link.symlink_to(bundled[0])
    action = (f'module(load="omkafka")\naction(type="omkafka" broker=["{bootstrap}"] topic="{topic}" '
              'template="RSYSLOG_SyslogProtocol23Format")')
    return run_rsyslog(workdir, "", action, {"LD_LIBRARY_PATH": str(libdir)})


def run_rsyslog(workdir: Path, globals_: str, action: str, env: dict[str, str] | None = None) -> Rsyslog:
    """rsyslogd in the foreground with an imtcp input on a free port and `action` as its output."""
    binary = need("rsyslogd", "apt-get install rsyslog rsyslog-gnutls")
    workdir.mkdir(parents=True, exist_ok=True)
    input_port = free_port()
    config = workdir / "rsyslog.conf"
    config.write_text(f'''global(workDirectory="{workdir}")
{globals_}
module(load="imtcp")
input(type="imtcp" port="{input_port}" address="127.0.0.1")
{action}
''')
    log = workdir / "rsyslogd.log"
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([binary, "-n", "-f", str(config), "-i", str(workdir / "rsyslogd.pid")],
                               env={**os.environ, **(env or {})}, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return Rsyslog(process, input_port, log)


def start_syslog_ng(workdir: Path, target_port: int) -> Rsyslog:
    """syslog-ng in the foreground: a syslog() source (RFC 5424, octet counting) on a free port, every
    message forwarded twice to `target_port`: by syslog() (RFC 5424, octet counting) and by network()
    (RFC 3164, LF framing)."""
    binary = SYSLOG_NG_ROOT / "usr" / "sbin" / "syslog-ng"
    if not binary.exists():
        pytest.fail("syslog-ng is not unpacked: `make test-clients` puts it under tests/support/syslog-ng")
    workdir.mkdir(parents=True, exist_ok=True)
    input_port = free_port()
    config = workdir / "syslog-ng.conf"
    config.write_text(f"""@version: 3.38
options {{ chain_hostnames(no); time_reopen(1); }};
source s_in {{ syslog(ip("127.0.0.1") port({input_port}) transport("tcp")); }};
destination d_5424 {{ syslog("127.0.0.1" port({target_port}) transport("tcp")); }};
destination d_3164 {{ network("127.0.0.1" port({target_port}) transport("tcp") persist-name("d_3164")); }};
log {{ source(s_in); destination(d_5424); destination(d_3164); }};
""")
    libs = [SYSLOG_NG_ROOT / "usr" / "lib" / "syslog-ng", SYSLOG_NG_ROOT / "usr" / "lib" / "x86_64-linux-gnu",
            SYSLOG_NG_ROOT / "lib" / "x86_64-linux-gnu"]
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(str(p) for p in libs)}
    log = workdir / "syslog-ng.log"
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([str(binary), "-F", "-e", "-f", str(config),
                                f"--module-path={SYSLOG_NG_ROOT / 'usr' / 'lib' / 'syslog-ng' / '3.38'}",
                                "-R", str(workdir / "persist"), "-p", str(workdir / "pid"),
                                "-c", str(workdir / "ctl"), "--no-caps"],
                               env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    return Rsyslog(process, input_port, log)
