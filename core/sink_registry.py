"""The one registry of sink names: the built-ins plus every `logweave.sinks` entry point.

Settings validate `sinks.enabled` and routing rules against it, the drain and `logweave replay`
build sinks from it. Built-ins are `module:Class` strings, imported only when a sink is created,
so an unused client is never loaded; a built-in whose client is an optional package names the pip
extra that brings it. Plugins are found by name among the installed distributions' entry points
(`[project.entry-points."logweave.sinks"] name = "package.module:SinkClass"`); a plugin's settings
live under `sinks.<name>` and are validated against the model its class names (`settings_model`).
This module never imports a sink itself except a plugin whose settings must be checked.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from pydantic import BaseModel

from core.errors import ConfigError

ENTRY_POINT_GROUP = "logweave.sinks"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuiltinSink:
    target: str  # "module:Class"
    extra: str | None = None  # the pip extra that installs its client, when that is optional
    requires: tuple[str, ...] = ()  # modules of that client


BUILTIN_SINKS: dict[str, BuiltinSink] = {
    "file": BuiltinSink("sinks.file:FileSink"),
    "etcd": BuiltinSink("sinks.etcd:EtcdSink"),
    "elasticsearch": BuiltinSink("sinks.elasticsearch:ElasticsearchSink"),
    "s3": BuiltinSink("sinks.s3:S3Sink"),
    "kafka": BuiltinSink("sinks.kafka:KafkaSink"),
    "gcs": BuiltinSink("sinks.gcs:GcsSink", extra="gcs", requires=("gcloud.aio.storage",)),
    "postgres": BuiltinSink("sinks.postgres:PostgresSink"),
}


def plugin_entry_points() -> dict[str, metadata.EntryPoint]:
    """Installed plugins by name (read afresh: a package installed since start-up is seen)."""
    found: dict[str, metadata.EntryPoint] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in BUILTIN_SINKS:
            log.warning("sink plugin %s (%s) ignored: a built-in sink has that name", entry.name, entry.value)
        else:
            found.setdefault(entry.name, entry)
    return found


def sink_names() -> list[str]:
    return [*BUILTIN_SINKS, *sorted(plugin_entry_points())]


def check_sink_names(names: list[str]) -> list[str]:
    """`names` if every one is a known sink whose packages are installed; ValueError otherwise."""
    known = sink_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown sink(s) {unknown}; allowed: {', '.join(known)} "
                         f"(plugins: packages with a {ENTRY_POINT_GROUP!r} entry point)")
    for name in names:
        missing = missing_package(name)
        if missing:
            raise ValueError(missing)
    return names


def missing_package(name: str) -> str | None:
    """Why the built-in sink `name` cannot load (its optional client is absent), or None."""
    builtin = BUILTIN_SINKS.get(name)
    if builtin is None or builtin.extra is None:
        return None
    for module in builtin.requires:
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a missing parent package
            present = False
        if not present:
            return (f"sink {name!r} needs the optional package that provides {module}: "
                    f"pip install 'logweave[{builtin.extra}]'")
    return None


def load_plugin(name: str) -> Any:
    """The class a plugin's entry point names; ConfigError when it cannot be imported or is no sink."""
    entry = plugin_entry_points().get(name)
    if entry is None:
        raise ConfigError(f"unknown sink {name!r}; allowed: {', '.join(sink_names())}")
    where = f"{entry.value}" + (f" from {entry.dist.name}" if entry.dist is not None else "")
    try:
        sink_class = entry.load()
    except ImportError as exc:
        raise ConfigError(f"sink plugin {name!r} ({where}) cannot be imported: {exc}; "
                          "reinstall the plugin package with its dependencies") from exc
    model = getattr(sink_class, "settings_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"sink plugin {name!r} ({where}) has no settings_model (a pydantic model class)")
    if getattr(sink_class, "name", None) != name:
        raise ConfigError(f"sink plugin {name!r} ({where}): its class is named "
                          f"{getattr(sink_class, 'name', None)!r}; the entry point and Sink.name must agree")
    return sink_class


def plugin_settings_model(name: str) -> type[BaseModel]:
    model: type[BaseModel] = load_plugin(name).settings_model
    return model
