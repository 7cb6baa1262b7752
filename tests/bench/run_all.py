"""`make bench`: every benchmark in one run, results merged into bench/results.json and results.md.

Each benchmark is its own script (so one crashing does not hide the others' figures) and prints
its figures beside the limit it measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCHES = [
    ("pipeline", "tests.bench.bench_pipeline", ["--lines", "1000000", "--files", "100"]),
    ("worker", "tests.bench.bench_worker", ["--lines", "1000000"]),
    ("collector", "tests.bench.bench_collector", []),
    ("pod_collector", "tests.bench.bench_pod_collector", []),
    ("sinks", "tests.bench.bench_sinks", []),
]


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    cores = sum(1 for line in info if line.startswith("processor"))
    return f"{cpu}, {cores} cores, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--only", nargs="*", help="names of benchmarks to run")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    report = [f"# Logweave benchmarks\n\n{results['machine']}, {results['date']}\n"]
    failed = 0
    for name, module, extra in BENCHES:
        if args.only and name not in args.only:
            continue
        if not (Path(__file__).parent / f"{module.rsplit('.', 1)[1]}.py").exists():
            continue
        out = args.out.parent / f"{name}.json"
        print(f"\n=== {name} ===", flush=True)
        run = subprocess.run([sys.executable, "-m", module, *extra, "--out", str(out)], capture_output=True, text=True)
        print(run.stdout[-6000:], run.stderr[-3000:] if run.returncode else "", flush=True)
        if run.returncode != 0:
            failed += 1
            results[name] = {"error": run.stderr[-2000:]}
            continue
        results[name] = json.loads(out.read_text())
        report.append(f"## {name}\n\n```\n{run.stdout.strip()[-4000:]}\n```\n")
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text("\n".join(report))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
