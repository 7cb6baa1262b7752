"""requirements.lock agrees with pyproject.toml and is what the image installs, hashes required.

The lock is the runtime set (pyproject's `dependencies`, plus the build backend) pinned with hashes:
every runtime dependency is there at a version its specifier allows, every entry is pinned with
`==` and carries sha256 hashes, nothing dev- or test-only slipped in, and the Dockerfile installs
it with `--require-hashes` on a base pinned by digest. Each check is shown to fail on a broken copy.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def parse_lock(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from a pip-compile lock; raises on an entry not pinned with ==."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", text.replace("\\\n", " ")):
        line = block.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"lock entry not pinned with ==: {line[:80]}"
        entries[canonicalize_name(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
    return entries


def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def check_lock(text: str) -> None:
    locked = parse_lock(text)
    image_extras = project()["optional-dependencies"]["gcs"]  # type: ignore[index]  # every sink's client ships
    for spec in [*project()["dependencies"], *image_extras]:  # type: ignore[misc]
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"runtime dependency {requirement.name} is not in requirements.lock (make lock)"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), \
            f"{name}=={locked[name][0]} in the lock does not satisfy {spec} (make lock)"
    for name, (_, hashes) in locked.items():
        assert hashes, f"{name} has no --hash in requirements.lock"
    extras = project()["optional-dependencies"]  # type: ignore[index]
    dev_only = {canonicalize_name(Requirement(s).name) for s in extras["dev"]}  # type: ignore[index]
    assert not dev_only & set(locked), f"dev-only packages in the runtime lock: {dev_only & set(locked)}"


def test_the_lock_holds_every_runtime_dependency_pinned_with_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text()
    check_lock(text)
    assert {"setuptools", "wheel"} <= set(parse_lock(text)), "the build backend is locked too (--no-build-isolation)"


@pytest.mark.parametrize("breakage", ["missing package", "missing hashes", "unpinned", "out of range", "dev-only"])
def test_the_lock_check_catches_a_broken_lock(breakage: str) -> None:
    text = (ROOT / "requirements.lock").read_text()
    if breakage == "missing package":
        text = re.sub(r"\naiokafka==.*?(?=\n\S)", "", text, flags=re.S)
    elif breakage == "missing hashes":
        text = re.sub(r"(\norjson==\S+) \\(\n\s+--hash=\S+( \\)?)+", r"\1", text)
    elif breakage == "unpinned":
        text = text.replace("\nlz4==", "\nlz4>=", 1)
    elif breakage == "out of range":
        text = re.sub(r"\npydantic==[^\s]+", "\npydantic==1.10.0", text)
    else:
        text += "noida-db==0.2.3 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    with pytest.raises(AssertionError):
        check_lock(text)


def test_the_dev_tools_are_not_runtime_dependencies() -> None:
    runtime = {canonicalize_name(Requirement(s).name) for s in project()["dependencies"]}  # type: ignore[attr-defined]
    assert not {"noida-db", "honcho"} & runtime
    makefile = (ROOT / "Makefile").read_text()
    assert "-e '.[dev,test,gcs]'" in makefile and "--require-hashes --no-deps -r requirements.lock" in makefile


def dockerfile_steps() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_installs_the_lock_with_hashes_on_a_base_pinned_by_digest() -> None:
    steps = dockerfile_steps()
    bases = [s.split()[1] for s in steps if s.startswith("FROM ")]
    assert bases and all(re.fullmatch(r"python:3\.11[\w.-]*@sha256:[0-9a-f]{64}", b) for b in bases), bases
    installs = [s for s in steps if s.startswith("RUN ") and "pip install" in s]
    assert any("--require-hashes" in s and "-r requirements.lock" in s for s in installs)
    project_install = next(s for s in installs if " install" in s and s.rstrip().split("&&")[0].rstrip().endswith(" ."))
    assert "--no-deps" in project_install and "--no-build-isolation" in project_install, "nothing resolved unpinned"
    assert not any("pip install --upgrade" in s for s in installs), "an unpinned pip upgrade"
    assert "COPY requirements.lock ./" in steps
