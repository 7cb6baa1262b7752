"""The Dockerfile, read without a Docker engine (none runs on these machines): multi-stage, a
non-root final user, copies exactly the installed packages, and its default command is the
worker command the manifests and compose file run."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    rows = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(row.split(None, 1)[0].upper(), row.split(None, 1)[1]) for row in rows]


def test_multi_stage_and_non_root() -> None:
    steps = instructions()
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) >= 2 and all("python:3.11" in s for s in stages)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(op == "COPY" and "--from=build" in args for op, args in final)


def test_copies_the_installed_packages_and_nothing_ignored() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {source for op, args in instructions() if op == "COPY" and "--from" not in args
              for source in args.split()[:-1]}
    assert packages | {"pyproject.toml", "README.md"} <= copied
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not ignored & copied, "the Dockerfile copies something .dockerignore leaves out"
    assert {".git", ".venv", "tests"} <= ignored


def test_default_command_is_the_worker_the_deployments_run() -> None:
    cmd = next(args for op, args in instructions() if op == "CMD")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    statefulset = yaml.safe_load((ROOT / "deploy/k8s/worker/statefulset.yaml").read_text())
    worker_command = compose["services"]["worker"]["command"]
    assert yaml.safe_load(cmd) == worker_command
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["command"] == worker_command
