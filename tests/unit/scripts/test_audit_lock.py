"""`make audit`'s verdict: a clean pass only when every locked package was checked.

pip-audit's own exit code is 0 when it skipped every package (its registry lookups failed), so the
verdict is read from its JSON report; these reports have the shape pip-audit 2.x writes.
"""

from __future__ import annotations

from typing import Any

from scripts.audit_lock import verdict


def dep(name: str, vulns: list[str] | None = None, skipped: bool = False) -> dict[str, Any]:
    if skipped:
        return {"name": name, "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (1.0)"}
    return {"name": name, "version": "1.0", "vulns": [{"id": v, "fix_versions": []} for v in vulns or []]}


def test_every_package_audited_and_clean_passes() -> None:
    code, message = verdict({"dependencies": [dep("a"), dep("b")]}, "pypi")
    assert code == 0 and "2 locked packages audited" in message


def test_nothing_audited_is_not_a_pass() -> None:
    code, message = verdict({"dependencies": [dep("a", skipped=True), dep("b", skipped=True)]}, "pypi")
    assert code == 2 and "NOT AUDITED" in message and "none of the 2" in message
    assert verdict({"dependencies": []}, "osv")[0] == 2


def test_partly_audited_names_what_was_not() -> None:
    code, message = verdict({"dependencies": [dep("a"), dep("b", skipped=True)]}, "osv")
    assert code == 2 and "only 1 of 2" in message and message.endswith("not audited: b")


def test_known_vulnerabilities_fail_with_their_ids() -> None:
    code, message = verdict({"dependencies": [dep("a", ["PYSEC-2026-1", "GHSA-x"]), dep("b")]}, "pypi")
    assert code == 1 and "a 1.0: PYSEC-2026-1, GHSA-x" in message
