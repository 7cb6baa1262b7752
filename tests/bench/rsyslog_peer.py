"""The C shipper peer: Debian's rsyslog following log files with imfile and publishing with omkafka.

Debian's own librdkafka (2.0) cannot parse the embedded broker's ApiVersions reply and delivers
nothing, so rsyslogd runs with LD_LIBRARY_PATH pointing at a directory whose `librdkafka.so.1` is the
current librdkafka bundled in the confluent-kafka wheel. Needs the Debian packages rsyslog and
rsyslog-kafka (`make system-deps`). One Kafka message per line, the raw line as the payload.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OMKAFKA_GLOB = "/usr/lib/*/rsyslog/omkafka.so"


def librdkafka_dir(workdir: Path) -> Path:
    """A directory holding `librdkafka.so.1` -> the confluent-kafka wheel's bundled librdkafka."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka-*.so.1"))
    if not found:
        raise RuntimeError(f"no bundled librdkafka in {libs}; reinstall confluent-kafka from its wheel")
    target = workdir / "librdkafka"
    target.mkdir(parents=True, exist_ok=True)
    link = target / "librdkafka.so.1"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(found[0])
    return target


def config_text(workdir: Path, file_glob: str, bootstrap: str, topic: str) -> str:
    """imfile (inotify, from the start of each file, follows kubelet's renames) -> omkafka, acks=all."""
    return f'''global(workDirectory="{workdir}" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="omkafka")
template(name="rawline" type="string" string="%msg%")
input(type="imfile" File="{file_glob}" Tag="pods" freshStartTail="off" reopenOnTruncate="on" addMetadata="off")
action(type="omkafka" broker=["{bootstrap}"] topic="{topic}" template="rawline" partitions.auto="on"
       confParam=["acks=all", "linger.ms=5", "enable.idempotence=true"]
       queue.type="LinkedList" queue.size="200000")
'''


@dataclass
class RsyslogShipper:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


def start_rsyslog_shipper(workdir: Path, file_glob: str, bootstrap: str, topic: str) -> RsyslogShipper:
    """rsyslogd in the foreground shipping every line of `file_glob` to `topic`."""
    binary = shutil.which("rsyslogd")
    if binary is None or not glob.glob(OMKAFKA_GLOB):
        raise RuntimeError("rsyslogd with omkafka is missing: apt-get install rsyslog rsyslog-kafka")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "rsyslog.conf"
    config.write_text(config_text(workdir, file_glob, bootstrap, topic))
    env = {**os.environ, "LD_LIBRARY_PATH": str(librdkafka_dir(workdir))}
    log = workdir / "rsyslogd.log"
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([binary, "-n", "-f", str(config), "-i", str(workdir / "rsyslogd.pid")], env=env,
                               stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    return RsyslogShipper(process, log)
