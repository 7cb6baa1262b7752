"""Where each setting came from, and the checks across settings that no single field can make.

A refusal is one line naming the setting, the variable or file its value came from (the seed
tool's `BATCH_SIZE` is reported as `BATCH_SIZE`, not as the `LOGWEAVE_...` name it maps onto) and
what is allowed. Every process loads settings through `core.settings.load_settings`, which runs
these checks, so the worker, the collectors, prepare, replay and `logweave check-config` refuse the
same configs with the same line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from core.redact import mask_text

if TYPE_CHECKING:
    from core.settings import Settings

Loc = tuple[str, ...]
SECRET_WORDS = ("password", "token", "secret", "api_key", "credential", "shared_key")


class Origins:
    """Setting path -> where its value came from; later sources replace earlier ones."""

    def __init__(self) -> None:
        self._by_path: dict[Loc, str] = {}

    def add(self, tree: Mapping[str, Any], source: str | Mapping[Loc, str], prefix: Loc = ()) -> None:
        """Record every leaf of `tree` as coming from `source` (one name, or one per leaf path)."""
        for key, value in tree.items():
            path = (*prefix, str(key))
            if isinstance(value, Mapping):
                self.add(value, source, path)
            else:
                self._by_path[path] = source if isinstance(source, str) else source.get(path, "argument")

    def of(self, loc: tuple[Any, ...]) -> str:
        """The source of the value at `loc` (list indexes ignored), or the variable that would set it."""
        path = tuple(str(p) for p in loc if not isinstance(p, int))
        for end in range(len(path), 0, -1):
            found = self._by_path.get(path[:end])
            if found is not None:
                return found
        return "default; set " + env_name(path)


def env_name(path: tuple[Any, ...]) -> str:
    return "LOGWEAVE_" + "__".join(str(p).upper() for p in path if not isinstance(p, int))


def _secret(loc: tuple[Any, ...], value: Any) -> bool:
    return isinstance(value, SecretStr) or any(word in str(p).lower() for p in loc for word in SECRET_WORDS)


def describe(loc: tuple[Any, ...], value: Any, message: str, origins: Origins) -> str:
    """The one line refusing the value at `loc`; a secret's value is never shown, nor a whole group's
    (it may hold credentials), and credentials inside URLs are masked."""
    dotted = ".".join(str(p) for p in loc)
    if isinstance(value, Mapping):
        shown = ""
    elif _secret(loc, value):
        shown = " = '********'" if value not in (None, "") else f" = {value!r}"
    else:
        shown = f" = {value!r}"
    return mask_text(f"invalid setting {dotted} ({origins.of(loc)}){shown}: {message}")


def error_message(error: Any) -> str:
    """A pydantic error's message, worded for an operator."""
    message: str = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown setting (check the spelling against `logweave check-config`)"
    if error["type"] == "literal_error":
        return "allowed values: " + message.removeprefix("Input should be ")
    return message


def explain(error: ValidationError, origins: Origins) -> str:
    """The first error of a pydantic validation as one line."""
    first = error.errors()[0]
    loc, value, message = tuple(first["loc"]), first.get("input"), error_message(first)
    if first["type"] == "setting_error":  # raised by a group about a setting below it
        context = first.get("ctx") or {}
        loc, value, message = tuple(context["setting"].split(".")), context["value"], context["message"]
    more = f" (and {len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
    dotted = ".".join(str(p) for p in loc)
    if isinstance(value, Mapping) and message.startswith(dotted + "."):  # a group's check names its setting
        return mask_text(f"invalid setting {message}{more}")
    return describe(loc, value, message, origins) + more


def first_problem(settings: Settings, origins: Origins) -> str | None:
    """The first inconsistency between settings, as one line, or None."""
    for loc, value, message in _problems(settings, origins):
        return describe(loc, value, message, origins)
    return None


def _problems(settings: Settings, origins: Origins) -> Iterator[tuple[Loc, Any, str]]:
    es, etcd = settings.sinks.elasticsearch, settings.sinks.etcd
    if _given(es.api_key) and (_given(es.username) or _given(es.password)):
        other = "username" if _given(es.username) else "password"
        yield (("sinks", "elasticsearch", "api_key"), es.api_key,
               f"also set: sinks.elasticsearch.{other} ({origins.of(('sinks', 'elasticsearch', other))}); "
               "allowed: an api_key or a username/password, not both")
    if (etcd.cert_file is None) != (etcd.key_file is None):
        given, missing = ("cert_file", "key_file") if etcd.key_file is None else ("key_file", "cert_file")
        yield (("sinks", "etcd", given), str(getattr(etcd, given)),
               f"sinks.etcd.{missing} is not set; allowed: both cert_file and key_file (client TLS), or neither")
    for group, name in (("etcd", "ca_file"), ("etcd", "cert_file"), ("etcd", "key_file"),
                        ("elasticsearch", "ca_file")):
        path: Path | None = getattr(getattr(settings.sinks, group), name)
        if path is not None and not path.is_file():
            yield (("sinks", group, name), str(path), "the file does not exist (or is not a file); allowed: the "
                                                      "path of a readable PEM file")
    names: set[str] = set()
    enabled = settings.sinks.enabled
    for index, rule in enumerate(settings.routing.rules):
        if rule.name in names:
            yield (("routing", "rules", str(index), "name"), rule.name,
                   "another rule has this name; allowed: a unique name per rule")
        names.add(rule.name)
        off = [s for s in rule.sinks if s not in enabled]
        if off:
            source = origins.of(("sinks", "enabled"))
            yield (("routing", "rules", str(index), "sinks"), rule.sinks,
                   f"{', '.join(off)} not enabled (sinks.enabled = {enabled}, from {source}); "
                   "allowed: sinks listed in sinks.enabled")


def _given(value: str | SecretStr | None) -> bool:
    """Set to something: an optional secret mounted empty counts as not set."""
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)
