"""Alert rules and the Grafana dashboard in deploy/monitoring are valid and say what they mean.

promtool (Debian `prometheus`, installed by `make test`) checks the rules and runs their unit tests
(alerts_test.yaml: each alert fires on its fault's series and stays silent on healthy ones); every
metric the rules and the dashboard use is one Logweave exports; the PrometheusRule carries the same
groups as the plain rules file; the Kubernetes scrape config names a job after each annotated workload
of deploy/k8s, and the component alert covers them all. A running Prometheus scraping every component is
in tests/integration/monitoring.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "logweave-alerts.yaml"
HERE = Path(__file__).parent
SOURCES = ("core", "collectors", "agents", "app", "sinks", "kafka_io")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: `make test` installs it with apt-get (package prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=HERE / "monitoring")


def example_log_metrics() -> set[str]:
    """The metrics from logs the shipped example rules define (deploy/dev-rules.yaml, the dashboard's
    log panels and docs/metrics-from-logs.md use them)."""
    rules = yaml.safe_load((ROOT / "deploy" / "dev-rules.yaml").read_text())["log_metrics"]["rules"]
    return {rule["name"] for rule in rules}


def exported_metrics() -> set[str]:
    """Every `logweave_*` metric name defined in the code or the example metric rules, with the suffixes
    Prometheus adds."""
    names: set[str] = set()
    for package in SOURCES:
        for source in (ROOT / package).rglob("*.py"):
            text = source.read_text()
            found = re.findall(r'"(logweave_[a-z0-9_]+)"', text)
            prefix = re.search(r'\bp = "(logweave_[a-z0-9_]+_)"', text)  # collectors name theirs from a prefix
            if prefix:
                found += [prefix[1] + name for name in re.findall(r'\(p \+ "([a-z0-9_]+)"', text)]
            for name in found:
                names |= {name, f"{name}_total", f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    for name in example_log_metrics():
        names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def used_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(logweave_[a-z0-9_]+)\b", expr))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def scraped_pod_templates() -> dict[str, dict[str, Any]]:
    """The pod template of every workload in deploy/k8s annotated for scraping, by its app.kubernetes.io/name."""
    templates = {}
    for path in (ROOT / "deploy" / "k8s").rglob("*.yaml"):
        for manifest in yaml.safe_load_all(path.read_text()):
            template = (manifest or {}).get("spec", {}).get("template", {})
            if template.get("metadata", {}).get("annotations", {}).get("prometheus.io/scrape") == "true":
                templates[template["metadata"]["labels"]["app.kubernetes.io/name"]] = template
    return templates


def rule_exprs() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_file_is_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_a_broken_rule_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULES.read_text().replace("max by (sink) (logweave_sink_breaker_state) >= 2",
                                                "max by (sink) (logweave_sink_breaker_state >= 2"))
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_each_alert_fires_on_its_fault_and_not_otherwise() -> None:
    result = promtool("test", "rules", "alerts_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_operator_rule_carries_the_same_groups(tmp_path: Path) -> None:
    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule" and operator["apiVersion"] == "monitoring.coreos.com/v1"
    assert operator["spec"] == yaml.safe_load(RULES.read_text())
    extracted = tmp_path / "operator-rules.yaml"
    extracted.write_text(yaml.safe_dump(operator["spec"]))
    assert promtool("check", "rules", str(extracted)).returncode == 0


def test_rules_and_dashboard_use_only_metrics_logweave_exports() -> None:
    exported = exported_metrics()
    assert "logweave_sink_breaker_state" in exported and "logweave_lines_total" in exported
    for expr in rule_exprs() + dashboard_exprs():
        unknown = used_metrics(expr) - exported
        assert not unknown, f"{expr!r} uses metrics nobody exports: {sorted(unknown)}"
    assert used_metrics("rate(logweave_no_such_metric_total[1m])") - exported  # the check can fail


def test_the_dashboard_is_grafana_json_with_one_query_per_panel() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] == "logweave-pipeline" and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["title"] and len(panel["targets"]) == 1 and panel["datasource"]["uid"] == "${datasource}"


def test_every_scraped_workload_gets_a_job_the_component_alert_covers() -> None:
    config = yaml.safe_load((MONITORING / "prometheus-scrape.yaml").read_text())
    assert config["rule_files"] == ["logweave-alerts.yaml"] and (MONITORING / "logweave-alerts.yaml").exists()
    relabel = config["scrape_configs"][0]["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "target_label": "job"} in relabel
    down = next(rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
                if rule.get("alert") == "LogweaveComponentDown")
    jobs = re.fullmatch(r'up\{job=~"([^"]+)"\} == 0', down)
    assert jobs, down
    templates = scraped_pod_templates()
    assert set(templates) == {"logweave-worker", "logweave-file-collector", "logweave-pod-collector", "logweave-intake"}
    for name, template in templates.items():
        assert re.fullmatch(jobs[1], name), f"{name}: its job is not covered by {down!r}"
        assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "logweave", name
        ports = [port["containerPort"] for container in template["spec"]["containers"] for port in container["ports"]]
        assert int(template["metadata"]["annotations"]["prometheus.io/port"]) in ports, name
