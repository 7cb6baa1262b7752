"""Scope of the collector: which namespaces to watch and a local label-selector matcher.

The API server filters pods by `labelSelector`; matching locally as well lets the collector treat
a pod whose labels no longer match as out of scope even if an event arrives that says otherwise,
and the Frostbeat-compatible settings (`NAMESPACE=a,b`, `*`) are turned into watch scopes here.
Grammar (Kubernetes labels.Parse): comma-separated requirements `k=v`, `k==v`, `k!=v`,
`k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import ConfigError

_ALL = {"", "*", "all"}
_SET_RE = re.compile(r"^\s*([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def namespace_scopes(setting: str) -> list[str | None]:
    """Namespaces to watch: None means every namespace (one cluster-wide watch)."""
    names = [n.strip() for n in setting.split(",") if n.strip()]
    if not names or any(n in _ALL for n in names):
        return [None]
    return list(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # "!=" and "notin" match a missing key


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches every pod."""

    text: str
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        return cls(text.strip(), tuple(_parse_requirement(part) for part in _split(text)))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _parse_requirement(part: str) -> Requirement:
    match = _SET_RE.match(part)
    if match:
        values = frozenset(v.strip() for v in match.group(3).split(",") if v.strip())
        return Requirement(match.group(1), match.group(2), values)
    for op, name in (("!=", "!="), ("==", "="), ("=", "=")):
        if op in part:
            key, value = (s.strip() for s in part.split(op, 1))
            if not key or any(c in value for c in "=!(), "):
                break
            return Requirement(key, name, frozenset({value}))
    else:
        if part.startswith("!") and _is_key(part[1:].strip()):
            return Requirement(part[1:].strip(), "!")
        if _is_key(part):
            return Requirement(part, "exists")
    raise ConfigError(f"invalid label selector requirement {part!r} in LOGWEAVE_PODS__SELECTOR (SELECTOR); "
                      "use e.g. `app=web`, `tier!=db`, `env in (a,b)`, `!canary`")


def _is_key(text: str) -> bool:
    return bool(text) and not any(c in text for c in "=!(), ")
