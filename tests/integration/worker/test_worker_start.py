"""What a worker refuses at start, each with one line: a member id or data directory already in use
on this host, and topics missing or with the wrong partition count (it never creates them).
Two workers started as the README says (`--web-port 6066`, `--web-port 6067`) keep distinct ids."""

from __future__ import annotations

from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from commands.broker import EmbeddedBroker, free_port
from core.settings import KafkaSettings, load_settings
from kafka_io.topic_admin import ensure_topics, prepare_worker_topics, worker_topics
from tests.support.kafka import describe_group
from tests.support.polling import wait_for
from tests.support.processes import VENV_BIN, ManagedProcess, base_env, wait_http_ok_in_thread, worker


def settings_env(broker: EmbeddedBroker, data_dir: Path) -> dict[str, str]:
    return {"LOGWEAVE_KAFKA__BROKERS": broker.bootstrap, "LOGWEAVE_WORKER__DATA_DIR": str(data_dir),
            "LOGWEAVE_SINKS__FILE__DIRECTORY": str(data_dir.parent / "out")}


def flag_only_worker(workdir: Path, env: dict[str, str], web_port: int, name: str) -> ManagedProcess:
    """A worker given its port only by faust's `--web-port` flag, as the README starts a second one."""
    argv = [str(VENV_BIN / "faust"), "-A", "app", "worker", "-l", "info", "--web-port", str(web_port)]
    return ManagedProcess(name, argv, base_env(env), workdir / f"{name}.log", workdir)


async def refusal(proc: ManagedProcess) -> str:
    """Wait for `proc` to exit; return its one `logweave worker:` line (and check it is the only one)."""
    await wait_for(lambda: not proc.alive(), timeout=60, what=f"{proc.name} to refuse to start",
                   last_seen=proc.log_tail)
    assert proc.process is not None and proc.process.returncode == 2, proc.log_tail()
    output = proc.log_path.read_text()
    lines = [line for line in output.splitlines() if "logweave worker:" in line]
    assert len(lines) == 1 and "Traceback" not in output, output[-3000:]
    return lines[0]


async def group_members(bootstrap: str, group: str) -> list[str]:
    described = await describe_group(bootstrap, group)
    return sorted(member["member_id"] for member in described["members"])


async def test_two_workers_on_one_host_get_ids_from_their_web_ports(broker: EmbeddedBroker, tmp_path: Path) -> None:
    envs = [settings_env(broker, tmp_path / f"data-{i}") for i in range(2)]
    await prepare_worker_topics(load_settings(environ=envs[0]))
    ports = [free_port(), free_port()]
    procs = [flag_only_worker(tmp_path, env, port, f"worker-{i}").start()
             for i, (env, port) in enumerate(zip(envs, ports, strict=True))]
    try:
        for proc, port in zip(procs, ports, strict=True):
            await wait_http_ok_in_thread(f"http://127.0.0.1:{port}/readyz", 90, proc)
        await wait_for(lambda: _two_members(broker.bootstrap), timeout=30, what="both workers in the group")
        for proc, port in zip(procs, ports, strict=True):
            assert "group member id logweave-" in proc.log_path.read_text() and f"-{port} " in proc.log_tail(10_000)
    finally:
        for proc in procs:
            proc.stop()


async def _two_members(bootstrap: str) -> list[str] | None:
    members = await group_members(bootstrap, "logweave")
    return members if len(members) == 2 else None


async def test_a_member_id_or_data_dir_in_use_is_refused(broker: EmbeddedBroker, tmp_path: Path) -> None:
    env = {**settings_env(broker, tmp_path / "data-a"), "LOGWEAVE_KAFKA__GROUP_INSTANCE_ID": "same-id"}
    await prepare_worker_topics(load_settings(environ=env))
    first_port = free_port()
    first = worker(tmp_path, env, first_port, name="first").start()
    try:
        await wait_http_ok_in_thread(f"http://127.0.0.1:{first_port}/readyz", 90, first)
        same_id = worker(tmp_path, {**env, "LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / "data-b")}, free_port(),
                         name="same-id").start()
        assert "group member id 'same-id' is already used" in await refusal(same_id)
        same_dir = worker(tmp_path, {**env, "LOGWEAVE_KAFKA__GROUP_INSTANCE_ID": "other-id"}, free_port(),
                          name="same-dir").start()
        assert "LOGWEAVE_WORKER__DATA_DIR" in await refusal(same_dir)
        assert first.alive()
    finally:
        first.stop()


async def test_missing_topics_are_not_created_and_a_wrong_count_is_refused(broker: EmbeddedBroker,
                                                                          tmp_path: Path) -> None:
    env = settings_env(broker, tmp_path / "data")
    missing = worker(tmp_path, env, free_port(), name="before-prepare").start()
    line = await refusal(missing)
    assert "are missing" in line and "logweave prepare" in line
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        assert "logs.parsed" not in await admin.list_topics()  # the worker created nothing
    finally:
        await admin.close()
    etcd_only = load_settings(environ={**env, "LOGWEAVE_SINKS__ENABLED": "etcd"})
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap), list(worker_topics(etcd_only)))  # no config.rules
    no_rules = worker(tmp_path, env, free_port(), name="no-rules-topic").start()
    line = await refusal(no_rules)
    assert "config.rules" in line and "logweave prepare" in line
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        assert "config.rules" not in await admin.list_topics()  # not created by the worker either
    finally:
        await admin.close()
    await prepare_worker_topics(etcd_only)  # all but sink.file
    await ensure_topics(KafkaSettings(brokers=broker.bootstrap, partitions=1), ["sink.file"])
    wrong = worker(tmp_path, env, free_port(), name="wrong-count").start()
    line = await refusal(wrong)
    assert "sink.file has 1" in line and "kafka.partitions=4" in line
