"""`make bench`: every benchmark in one run -> bench/results.json, results.md, results.png and the README table.

Each benchmark is its own script (so one crashing does not hide the others' figures) and prints
its figures beside the limit it measured in the same run. A failed benchmark is kept in the results
as its error and shows as a "failed: <reason>" row (tests/bench/report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench import report

BENCHES = [
    ("pipeline", "tests.bench.bench_pipeline", ["--lines", "1000000", "--files", "100"]),
    ("worker", "tests.bench.bench_worker", ["--lines", "1000000", "--rates", "10000,20000,50000", "--seconds", "15"]),
    ("collector", "tests.bench.bench_collector", []),
    ("pod_collector", "tests.bench.bench_pod_collector", []),
    ("sinks", "tests.bench.bench_sinks", []),
    ("intake", "tests.bench.bench_intake", ["--lines", "200000", "--rounds", "3"]),
    ("query", "tests.bench.bench_query", []),
    ("parsers", "tests.bench.bench_parsers", []),
    ("live", "tests.bench.bench_live",
     ["--rows", "200x20,200x50,1000x2,50x0.5", "--pod-rows", "200x20,1000x2", "--pod-tls-rows", "200x20,1000x2",
      "--peer", "200x20,200x50,1000x2", "--seconds", "60"]),
]
# Benchmarks that run against an external Kafka when KAFKA_BROKERS is set (the others use the embedded broker).
HONOUR_KAFKA_BROKERS = {"live", *(name for name, _ in report.EXTERNAL_CAPABLE)}
TIMEOUT = 1800.0  # seconds per benchmark


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    cores = os.cpu_count() or 0
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    os_name = platform.system()
    release = Path("/etc/os-release")
    if release.exists():
        fields = dict(line.split("=", 1) for line in release.read_text().splitlines() if "=" in line)
        os_name = fields.get("PRETTY_NAME", os_name).strip('"')
    return f"{cpu}, {cores} cores, {memory:.0f} GiB RAM, {os_name}, Python {platform.python_version()}"


def bench_env(name: str) -> dict[str, str]:
    """The environment of one benchmark: KAFKA_BROKERS only for those that honour it. The others start
    an embedded broker and point every process at it (LOGWEAVE_KAFKA__BROKERS wins over KAFKA_BROKERS);
    dropping it keeps anything they start without that override off the external cluster."""
    env = dict(os.environ)
    if name not in HONOUR_KAFKA_BROKERS:
        env.pop("KAFKA_BROKERS", None)
    return env


def run_bench(name: str, module: str, extra: list[str], out: Path) -> dict[str, Any]:
    print(f"\n=== {name} ===", flush=True)
    try:
        run = subprocess.run([sys.executable, "-m", module, *extra, "--out", str(out)], capture_output=True,
                             text=True, timeout=TIMEOUT, env=bench_env(name))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT:.0f} s"}
    print(run.stdout[-6000:], run.stderr[-3000:] if run.returncode else "", flush=True)
    if run.returncode != 0:
        return {"error": run.stderr[-2000:] or f"exit status {run.returncode}"}
    if not out.exists():
        return {"error": f"{module} wrote no {out.name}"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def write_report(results: dict[str, Any], out: Path, readme: Path | None) -> None:
    """results.json, results.md, results.png beside it; the README's table between the bench markers."""
    out.write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    out.with_suffix(".md").write_text(f"# Logweave benchmarks\n\n{table}")
    written = [out, out.with_suffix(".md")]
    try:
        report.write_chart(results, out.with_suffix(".png"))
        written.append(out.with_suffix(".png"))
    except ImportError:
        print("no chart: matplotlib is missing; install the bench extra: pip install -e '.[bench]'")
    if readme is not None:
        readme.write_text(report.replace_between_markers(readme.read_text(), table))
        written.append(readme)
    print("\n" + table + "\nwrote " + ", ".join(str(p) for p in written))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--only", nargs="*", help="names of benchmarks to run (the README is then left alone)")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--report-only", action="store_true", help="re-render the report from --out, run nothing")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        write_report(json.loads(args.out.read_text()), args.out, args.readme)
        return 0
    results: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if os.environ.get("KAFKA_BROKERS"):
        results["kafka_brokers"] = os.environ["KAFKA_BROKERS"]
        print(f"KAFKA_BROKERS={os.environ['KAFKA_BROKERS']}: used by {', '.join(sorted(HONOUR_KAFKA_BROKERS))}; "
              "the other benchmarks run on the embedded broker", flush=True)
    with tempfile.TemporaryDirectory(prefix="logweave-bench-results-") as tmp:
        for name, module, extra in BENCHES:
            if args.only and name not in args.only:
                continue
            results[name] = run_bench(name, module, extra, Path(tmp) / f"{name}.json")
    write_report(results, args.out, None if args.only else args.readme)
    failed = [name for name, result in results.items() if isinstance(result, dict) and "error" in result]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
