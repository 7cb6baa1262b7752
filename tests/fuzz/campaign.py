"""`make fuzz`: build the C extensions with ASan+UBSan, run every target under atheris for a fixed
budget, and print what ran: inputs per target, and any finding (the run then fails).

Each target runs in its own Python with atheris's sanitizer runtime preloaded (LLVM's ASan with UBSan
handlers, the one its libFuzzer expects) and PYTHONMALLOC=malloc. A finding leaves libFuzzer's
`crash-*` input under build/fuzz/corpus/<target>/; replay it with
`python -m tests.fuzz.run <target> --sanitized build/fuzz <that file>` under the same environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.fuzz.sanitized import ROOT, build
from tests.fuzz.targets import TARGETS


def sanitizer_env() -> dict[str, str]:
    import atheris

    runtime = Path(atheris.path()) / "asan_with_fuzzer.so"
    return {**os.environ, "LD_PRELOAD": str(runtime), "PYTHONMALLOC": "malloc",
            "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1:handle_abort=1",
            "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60, help="budget per target")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args()
    out = ROOT / "build" / "fuzz"
    build(out)
    env, results = sanitizer_env(), {}
    for target in args.targets.split(","):
        log = out / f"{target}.log"
        began = time.monotonic()
        with open(log, "w") as handle:
            code = subprocess.call([sys.executable, "-m", "tests.fuzz.run", target, "--seconds", str(args.seconds),
                                    "--sanitized", str(out), "--corpus", str(out / "corpus")],
                                   env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        text = log.read_text(errors="replace")
        runs = re.search(r"stat::number_of_executed_units: (\d+)", text)
        finding = re.search(r"(ERROR: AddressSanitizer: [^\n]+|runtime error: [^\n]+|Uncaught Python exception[^\n]*\n"
                            r"[^\n]+|ERROR: libFuzzer: [^\n]+)", text)
        results[target] = {"inputs": int(runs[1]) if runs else None, "seconds": round(time.monotonic() - began, 1),
                           "exit": code, "finding": finding[0].replace("\n", " ") if finding else None,
                           "log": str(log.relative_to(ROOT))}
        status = "clean" if code == 0 and not finding else f"FINDING: {results[target]['finding']} (see {log})"
        print(f"fuzz {target:13s} {results[target]['inputs'] or 0:>9,} inputs in {results[target]['seconds']:5.0f} s  "
              f"{status}", flush=True)
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    return 0 if all(r["exit"] == 0 and not r["finding"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
