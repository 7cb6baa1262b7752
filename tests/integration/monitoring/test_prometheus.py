"""A real Prometheus (Debian `prometheus`) scrapes every component of a running pipeline (a worker, a
file collector, an intake and a pod collector, the last reading the Kubernetes API test server), each
as its own process, with Logweave's alert rules loaded: every component is scraped (`up == 1`); the
stalled-sink alert fires while the etcd sink's server is down from the start (lag, nothing ever
written) and clears once it is up and the backlog written; the breaker alert fires while it is
stopped again and clears once it is back; a burst of not-JSON lines fires the dead-letter rate
alert with its stage and reason; the heartbeat alert fires when the collector is killed (-9) and
clears once it is back; a clean stop fires the component alert but not the heartbeat one; every
dashboard query returns data (the worker runs the example metric rules of deploy/dev-rules.yaml, so
the log metric panels have data). Scraping two workers, the log metrics summed over instances are
exactly the matching lines fed, and one killed worker fires the component and heartbeat alerts,
which clear once it is restarted.

The rules are the shipped ones with every `for:` shortened to 0s, so the test waits seconds rather
than minutes; the expressions are unchanged. Hence what is not waited for: the dead-letter alert
clears only once the burst leaves its 5 min `rate` window, and a sink that wrote before its server
went away is stalled only after 5 min without writes (so the stalled alert is caused with a sink
that never reached its server).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.worker_start import member_id
from commands.broker import EmbeddedBroker, free_port
from tests.integration.collectors.intake.test_http import post
from tests.integration.worker.test_grouping import BASE, NO_IDLE_CLOSE, doc
from tests.support.kube_api import FakeKubeApi
from tests.support.log_metric_traffic import grouped_lines, traffic
from tests.support.polling import wait_for
from tests.support.processes import (
    INTAKE_HTTP_ONLY,
    ManagedProcess,
    file_collector,
    intake,
    pod_collector,
    wait_http_ok_in_thread,
)
from tests.support.servers import Server, etcd_server
from tests.support.worker_harness import WorkerHarness, wait_each_groups
from tests.unit.deploy.test_monitoring import scraped_pod_templates

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"


class Prometheus:
    def __init__(self, workdir: Path, targets: Mapping[str, str | list[str]],
                 scrape_configs: list[dict[str, Any]] | None = None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: `make test` installs it with apt-get (package prometheus)")
        rules = yaml.safe_load((MONITORING / "logweave-alerts.yaml").read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule["for"] = "0s"
        (workdir / "rules.yaml").write_text(yaml.safe_dump(rules))
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
                  "rule_files": [str(workdir / "rules.yaml")],
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target] if isinstance(
                      target, str) else target}]} for job, target in targets.items()] + (scrape_configs or [])}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
            return json.loads(response.read())["data"]

    def firing(self) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        for alert in self.get("/api/v1/alerts")["alerts"]:
            if alert["state"] == "firing":
                out.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return out

    def last_evaluation(self, alert: str) -> float:
        """When the rule of `alert` was last evaluated (epoch seconds)."""
        rule = next(rule for group in self.get("/api/v1/rules")["groups"] for rule in group["rules"]
                    if rule["name"] == alert)
        stamp = re.sub(r"(\.\d{6})\d+", r"\1", rule["lastEvaluation"]).replace("Z", "+00:00")
        return datetime.fromisoformat(stamp).timestamp()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def example_metric_rules() -> dict[str, str]:
    """The worker setting carrying the example metric rules `make run` uses (deploy/dev-rules.yaml)."""
    rules = yaml.safe_load((ROOT / "deploy" / "dev-rules.yaml").read_text())["log_metrics"]["rules"]
    return {"LOGWEAVE_LOG_METRICS__RULES": yaml.safe_dump(rules, default_flow_style=True, width=100_000).strip()}


def service_doc(n: int) -> dict[str, Any]:
    """A line for every panel: a service, a duration, and one error in ten."""
    return {**doc(f"t{n % 5}", BASE + n, n, "error" if n % 10 == 0 else "info"), "service": "checkout",
            "duration_ms": n * 10}


TOKEN = "token-of-the-shop"


def kubernetes_scrape_job(ports: Mapping[str, int]) -> dict[str, Any]:
    """The shipped scrape job (deploy/monitoring/prometheus-scrape.yaml), its pod discovery (not built into
    Debian's Prometheus) replaced by static targets with the metadata Kubernetes gives the pods of deploy/k8s:
    its relabelling names each job and finds each port. A pod of another application is dropped."""
    job: dict[str, Any] = yaml.safe_load((MONITORING / "prometheus-scrape.yaml").read_text())["scrape_configs"][0]
    del job["kubernetes_sd_configs"]

    def pod(name: str, port: int, part_of: str = "logweave") -> dict[str, Any]:
        meta = "__meta_kubernetes_pod_"
        return {"targets": ["127.0.0.1"], "labels": {
            f"{meta}annotation_prometheus_io_scrape": "true", f"{meta}annotation_prometheus_io_port": str(port),
            f"{meta}label_app_kubernetes_io_name": name, f"{meta}label_app_kubernetes_io_part_of": part_of,
            f"{meta}name": f"{name}-0", "__meta_kubernetes_namespace": "logweave"}}

    job["static_configs"] = [pod(name, port) for name, port in ports.items()] + [
        pod("logweave-elsewhere", free_port(), part_of="another-app")]
    return job


def intake_and_pod_collector(tmp_path: Path, env: Mapping[str, str], kube: FakeKubeApi, intake_port: int,
                             pods_port: int) -> tuple[ManagedProcess, ManagedProcess]:
    """`logweave intake` (HTTP with a bearer token only) and `logweave collect pods` on `kube`, both on the
    pipeline of `env` (a worker's settings)."""
    tenants = [{"name": "shop", "token_sha256": [hashlib.sha256(TOKEN.encode()).hexdigest()]}]
    intake_process = intake(tmp_path, {**env, "LOGWEAVE_INTAKE__HTTP_PORT": str(intake_port), **INTAKE_HTTP_ONLY,
                                       "LOGWEAVE_INTAKE__TENANTS": json.dumps(tenants)}).start()
    pods_process = pod_collector(tmp_path, {
        **env, "LOGWEAVE_PODS__KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
        "LOGWEAVE_PODS__CONFIG_MODE": "kubeconfig", "LOGWEAVE_PODS__METRICS_PORT": str(pods_port),
        "LOGWEAVE_PODS__FLUSH_INTERVAL": "0.05", "LOGWEAVE_PODS__BACKOFF_MAX": "1s"}).start()
    return intake_process, pods_process


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Server]:
    """An etcd server, not started: the test starts it."""
    server = etcd_server(tmp_path)
    yield server
    server.stop()


async def test_alerts_fire_on_faults_and_clear_and_dashboard_queries_return_data(
        broker: EmbeddedBroker, make_worker: Callable[..., WorkerHarness], etcd: Server, kube: FakeKubeApi,
        tmp_path: Path) -> None:
    worker = await make_worker({"LOGWEAVE_SINKS__ETCD__SERVERS": etcd.url, "LOGWEAVE_TRACES__GAP": "1s",
                                "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h",
                                "LOGWEAVE_SINKS__RETRY__BREAKER_FAILURES": "2",
                                "LOGWEAVE_SINKS__RETRY__BREAKER_RESET": "1s",
                                "LOGWEAVE_HEARTBEATS__INTERVAL": "2s", **example_metric_rules()},
                               sinks=("file", "etcd")).start()
    pods = tmp_path / "pods" / "ns_pod_0000" / "app"
    pods.mkdir(parents=True)
    (pods / "0.log").write_text("2025-06-10T08:25:41.630702460Z stdout F {\"traceId\":\"c1\",\"msg\":\"hi\"}\n")
    collector_port = free_port()
    collector = file_collector(tmp_path, {**worker.env, "LOGWEAVE_COLLECTOR__METRICS_PORT": str(collector_port),
                                          "LOGWEAVE_COLLECTOR__CHECKPOINT_DIR": str(tmp_path / "ckpt"),
                                          "LOGWEAVE_COLLECTOR__NODE_NAME": "node-a"},
                               [str(tmp_path / "pods" / "*" / "*" / "*.log")]).start()
    kube.log(kube.add_pod("web-1"), "app", [json.dumps(doc("p1", BASE, 0))])  # the pod collector's line
    intake_port, pods_port = free_port(), free_port()
    intake_process, pods_process = intake_and_pod_collector(tmp_path, worker.env, kube, intake_port, pods_port)
    # scraped as on Kubernetes: the job is the pod's app.kubernetes.io/name
    ports = {"logweave-worker": worker.web_port, "logweave-file-collector": collector_port,
             "logweave-intake": intake_port, "logweave-pod-collector": pods_port}
    assert set(ports) == set(scraped_pod_templates())
    prometheus = Prometheus(tmp_path, {}, [kubernetes_scrape_job(ports)])
    try:
        for url, process in ((f"http://127.0.0.1:{collector_port}/metrics", collector),
                             (f"http://127.0.0.1:{intake_port}/readyz", intake_process),
                             (f"http://127.0.0.1:{pods_port}/metrics", pods_process),
                             (f"{prometheus.url}/-/ready", None)):
            await wait_http_ok_in_thread(url, 60, process)  # the loop serves the Kubernetes API meanwhile
        # two lines stored and one refused (a rejection by reason): 400, naming the bad record
        body = b"".join(json.dumps(doc(f"i{n}", BASE + n, n)).encode() + b"\n" for n in range(2)) + b"{not json\n"
        status, _, answer = await post(f"http://127.0.0.1:{intake_port}", body, {
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"})
        assert (status, answer["accepted"], answer["rejected"]) == (400, 2, 1), answer

        def up() -> dict[str | None, str]:
            result = prometheus.get("/api/v1/query", query="up")["result"]
            return {r["metric"].get("job"): r["value"][1] for r in result}

        await wait_for(lambda: up() == dict.fromkeys(ports, "1"), timeout=30, last_seen=up,
                       what="every component scraped (up == 1), no other")
        # traffic that touches every panel: lines, a dead letter, a replayed (duplicate) chunk, closes
        await worker.feed([service_doc(i) for i in range(50)] + [b"not json"], stream="a")
        await worker.feed([service_doc(i) for i in range(50)], stream="a", resend_from=0)

        # the etcd sink's server is down from the start: its topic holds records while it never wrote a line,
        # so the stalled alert's `rate(written[5m])` is 0 at once (a sink that wrote would take five minutes)
        # with `for: 0s` the file sink reads as stalled for the moment its topic holds the records just fed
        # and Prometheus has not yet scraped their writes (`for: 10m` rides that out): wait for the state in
        # which etcd alone is stalled, which it never leaves if the file sink really wrote nothing
        def stalled_sinks() -> list[str]:
            return sorted(labels["sink"] for labels in prometheus.firing().get("LogweaveSinkStalled", []))

        await wait_for(lambda: stalled_sinks() == ["etcd"], timeout=60, last_seen=stalled_sinks,
                       what="the stalled alert for the never-reached etcd sink alone (the file sink writes)")

        etcd.start()
        # 50 lines fed here, the file collector's one, the pod's one and the intake's two: each written once,
        # the replayed chunk skipped
        await wait_for(lambda: b'logweave_sink_lines_written_total{sink="etcd"} 54.0' in worker.get("/metrics")[1],
                       timeout=60, what="54 lines written to etcd",
                       last_seen=lambda: [ln for ln in worker.get("/metrics")[1].decode().splitlines()
                                          if ln.startswith("logweave_sink_lines_written_total")])
        await wait_for(lambda: "LogweaveSinkStalled" not in prometheus.firing(), timeout=60,
                       what="the stalled alert to clear once etcd is up and the backlog written",
                       last_seen=prometheus.firing)

        etcd.stop()  # the sink's server goes away; writes fail and its breaker opens
        await worker.feed([doc(f"u{i % 5}", BASE + i, i) for i in range(20)], stream="b")
        await wait_for(lambda: "LogweaveSinkBreakerOpen" in prometheus.firing(), timeout=90,
                       what="the breaker alert for the unreachable etcd sink", last_seen=prometheus.firing)
        assert [labels["sink"] for labels in prometheus.firing()["LogweaveSinkBreakerOpen"]] == ["etcd"]
        etcd.start()  # back, with its data directory
        await wait_for(lambda: "LogweaveSinkBreakerOpen" not in prometheus.firing(), timeout=90,
                       what="the breaker alert to clear once etcd is up", last_seen=prometheus.firing)

        # a burst of bad lines: more than 1 dead letter/s over the 5 m window (the single one above is not)
        assert "LogweaveDeadLetterRate" not in prometheus.firing()
        await worker.feed([b"not json"] * 600, stream="c")
        dead = await wait_for(lambda: prometheus.firing().get("LogweaveDeadLetterRate"), timeout=30,
                              what="the dead-letter rate alert after 600 bad lines", last_seen=prometheus.firing)
        assert [(labels["stage"], labels["reason"]) for labels in dead] == [("parse", "not_json")]

        dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            expr = panel["targets"][0]["expr"]
            await wait_for(lambda e=expr: prometheus.get("/api/v1/query", query=e)["result"], timeout=60,
                           what=f"data for the dashboard panel {panel['title']!r}: {expr}")
            # a panel showing two series side by side (`label_replace(..., "state", "read", ...) or ...`): both
            if states := set(re.findall(r'"state", "([a-z]+)"', expr)):
                result = prometheus.get("/api/v1/query", query=expr)["result"]
                assert {r["metric"]["state"] for r in result} == states, (panel["title"], result)

        # killed: no `stopped` beat, so the workers' view of the heartbeat topic says it is missing
        collector_id = f"file-collector-node-a-{collector_port}"
        age = f'logweave_component_heartbeat_age_seconds{{component="{collector_id}", kind="file-collector"}}'
        await wait_for(lambda: prometheus.get("/api/v1/query", query=age)["result"], timeout=60,
                       what="the collector's heartbeat age, scraped from the worker")
        assert "LogweaveHeartbeatMissing" not in prometheus.firing()
        collector.kill()
        missing = await wait_for(lambda: prometheus.firing().get("LogweaveHeartbeatMissing"), timeout=60,
                                 what="the heartbeat alert for the killed collector", last_seen=prometheus.firing)
        assert [(labels["component"], labels["kind"]) for labels in missing] == [(collector_id, "file-collector")]
        collector.start()  # the same node and port: the same component id, so its alert clears
        await wait_for(lambda: "LogweaveHeartbeatMissing" not in prometheus.firing(), timeout=60,
                       what="the heartbeat alert to clear once the collector is back", last_seen=prometheus.firing)

        # a clean stop: nothing to scrape (the component alert), but a `stopped` beat (no heartbeat alert)
        await wait_http_ok_in_thread(f"http://127.0.0.1:{collector_port}/metrics", 60, collector)
        # the kill fired the component alert too; it clears once Prometheus has scraped the collector again
        await wait_for(lambda: "LogweaveComponentDown" not in prometheus.firing(), timeout=60,
                       what="the component alert to clear once the restarted collector is scraped",
                       last_seen=prometheus.firing)
        collector.stop()
        stopped_at = time.time()
        down = await wait_for(lambda: prometheus.firing().get("LogweaveComponentDown"), timeout=60,
                              what="the component alert for the stopped collector")
        assert [labels["job"] for labels in down] == ["logweave-file-collector"]
        await wait_for(lambda: collector_id.encode() not in worker.get("/metrics")[1], timeout=30,
                       what="the stopped collector's heartbeat age gone from the worker's /metrics")
        # evaluated when a silent collector would be missing (three 2 s intervals, a scrape): still quiet
        await wait_for(lambda: prometheus.last_evaluation("LogweaveHeartbeatMissing") > stopped_at + 3 * 2 + 2,
                       timeout=30, what="the heartbeat rule evaluated past three intervals after the stop")
        assert not prometheus.get("/api/v1/query", query=age)["result"]
        assert "LogweaveHeartbeatMissing" not in prometheus.firing()
    finally:
        for process in (collector, intake_process, pods_process):
            process.stop()
        prometheus.stop()


async def test_two_workers_log_metrics_summed_and_a_killed_worker_fires_both_alerts(broker: EmbeddedBroker,
                                                                                    tmp_path: Path) -> None:
    """Two workers scraped: the log metrics summed over instances are exactly the lines fed. One killed (-9):
    the component alert fires for its target and, the other worker following the heartbeat topic, the
    heartbeat alert for its member id and its drain; restarted, both clear. (With a single worker, nobody is
    left to export the dead worker's heartbeat age: only the component alert sees it; docs/operations.md.)"""
    workers = [WorkerHarness(broker, tmp_path / name, {"LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / name / "data"),
                                                       "LOGWEAVE_HEARTBEATS__INTERVAL": "2s",
                                                       **NO_IDLE_CLOSE, **example_metric_rules()})
               for name in ("a", "b")]
    for worker in workers:
        worker.workdir.mkdir()
    prometheus = Prometheus(tmp_path, {"logweave-worker": [f"127.0.0.1:{w.web_port}" for w in workers]})
    try:
        for worker in workers:  # launched together: one group join, partitions split between them
            await worker.launch()
        for worker in workers:
            await worker.ready()
        await wait_each_groups(workers)
        await wait_http_ok_in_thread(f"{prometheus.url}/-/ready", 60)
        chunks, expected = traffic(streams=12, per_stream=30, time_text=time.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        await asyncio.gather(*[workers[0].feed(c.docs, stream=c.stream, source=c.source) for c in chunks])
        await workers[0].wait_until_quiet()
        grouped = [grouped_lines(w.get("/metrics")[1].decode()) for w in workers]
        assert all(count > 0 for count in grouped), f"one worker grouped nothing, so two were not shown: {grouped}"

        def errors() -> dict[tuple[str, str], int]:
            result = prometheus.get("/api/v1/query", query="sum without (instance) (logweave_log_errors_total)")
            return {(r["metric"]["service"], r["metric"]["namespace"]): int(float(r["value"][1]))
                    for r in result["result"]}

        def observed() -> int:
            result = prometheus.get("/api/v1/query", query="sum(logweave_log_duration_ms_count)")["result"]
            return int(float(result[0]["value"][1])) if result else -1

        await wait_for(lambda: errors() == dict(expected.errors) and observed() == expected.observed, timeout=60,
                       what="Prometheus's sums over both workers to equal the lines fed",
                       last_seen=lambda: (errors(), observed(), dict(expected.errors), expected.observed))
        instances = prometheus.get("/api/v1/query", query="count by (instance) (logweave_log_errors_total)")["result"]
        assert len(instances) == 2  # both workers counted some: each its own partitions' lines

        victim, survivor = workers[1], workers[0]
        victim_id = member_id(victim.settings, victim.web_port)  # its heartbeat id; its drain's is `<id>/<sink>`
        await wait_for(lambda: f'component="{victim_id}"'.encode() in survivor.get("/metrics")[1], timeout=30,
                       what=f"the other worker exporting the heartbeat age of {victim_id}",
                       last_seen=lambda: [ln for ln in survivor.get("/metrics")[1].decode().splitlines()
                                          if ln.startswith("logweave_component_heartbeat_age_seconds")])
        assert not {"LogweaveComponentDown", "LogweaveHeartbeatMissing"} & set(prometheus.firing())
        victim.stop(kill=True)  # no `stopped` beat
        down = await wait_for(lambda: prometheus.firing().get("LogweaveComponentDown"), timeout=30,
                              what="the component alert for the killed worker", last_seen=prometheus.firing)
        assert [(labels["job"], labels["instance"]) for labels in down] == [
            ("logweave-worker", f"127.0.0.1:{victim.web_port}")]
        def missing() -> list[tuple[str, str]]:
            return sorted((labels["component"], labels["kind"])
                          for labels in prometheus.firing().get("LogweaveHeartbeatMissing", []))

        # the worker and its drain (the file sink) beat separately; nothing else is missing
        await wait_for(lambda: missing() == [(victim_id, "worker"), (f"{victim_id}/file", "drain")], timeout=30,
                       what="the heartbeat alert for the killed worker and its drain", last_seen=missing)
        await victim.start()  # the same web port: the same member id
        await wait_for(lambda: not {"LogweaveComponentDown", "LogweaveHeartbeatMissing"} & set(prometheus.firing()),
                       timeout=30, what="both alerts to clear once the worker is back", last_seen=prometheus.firing)
    finally:
        prometheus.stop()
        for worker in workers:
            await worker.close()
