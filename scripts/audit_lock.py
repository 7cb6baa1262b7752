"""`make audit`: pip-audit over requirements.lock, where a run that audited nothing is a failure.

pip-audit reports "No known vulnerabilities found" and exits 0 even when it could not look a single
package up (every one "not found on PyPI", as behind a registry mirror that serves only the simple
index). So this reads its JSON report and passes only when every locked package was checked
against an advisory database. It asks PyPI's advisory data first, then OSV. Exit codes: 0 every
package audited and clean, 1 known vulnerabilities, 2 not (fully) audited.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SERVICES = ("pypi", "osv")


def verdict(report: dict[str, Any], service: str) -> tuple[int, str]:
    """(exit code, one plain line) for one pip-audit JSON report."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    if vulnerable:
        found = "; ".join(f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}" for d in vulnerable)
        return 1, f"make audit: known vulnerabilities ({service}): {found}"
    if not deps or len(skipped) == len(deps):
        reason = skipped[0]["skip_reason"] if skipped else "no packages in the report"
        return 2, (f"make audit: NOT AUDITED - the {service} advisory database answered for none of the "
                   f"{len(deps)} locked packages (first: {reason}). A run that audited nothing is not a pass.")
    if skipped:
        names = ", ".join(d["name"] for d in skipped)
        return 2, (f"make audit: only {len(deps) - len(skipped)} of {len(deps)} packages audited ({service}); "
                   f"not audited: {names}")
    return 0, f"make audit: {len(deps)} locked packages audited against {service}: no known vulnerabilities"


def audit(lock: Path, service: str) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        run = subprocess.run([sys.executable, "-m", "pip_audit", "-r", str(lock), "--require-hashes", "--disable-pip",
                              "--progress-spinner", "off", "-s", service, "-f", "json", "-o", str(out)],
                             capture_output=True, text=True, timeout=600)
        if not out.exists() or not out.read_text().strip():
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            return 2, f"make audit: NOT AUDITED - the {service} advisory database could not be reached ({last})"
        return verdict(json.loads(out.read_text()), service)


def main(argv: list[str]) -> int:
    lock = Path(argv[0] if argv else "requirements.lock")
    messages = []
    for service in SERVICES:
        code, message = audit(lock, service)
        if code in (0, 1):
            print(message)
            return code
        messages.append(message)
    print("\n".join(messages))
    print("make audit: FAILED - no advisory database could be reached for the whole lock; run it where "
          "pypi.org's JSON API or api.osv.dev answers (CI with internet access)")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
