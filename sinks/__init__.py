"""Sinks, chosen by name through a lazy registry so unused clients are never imported."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.settings import Settings
    from sinks.base import Sink

SINK_CLASSES: dict[str, str] = {
    "file": "sinks.file:FileSink",
    "etcd": "sinks.etcd:EtcdSink",
    "elasticsearch": "sinks.elasticsearch:ElasticsearchSink",
    "s3": "sinks.s3:S3Sink",
    "postgres": "sinks.postgres:PostgresSink",
}


def create_sink(name: str, settings: Settings) -> Sink:
    """Instantiate the sink called `name` from the settings (`sinks.<name>` group)."""
    try:
        target = SINK_CLASSES[name]
    except KeyError:
        raise ConfigError(f"unknown sink {name!r}; allowed: {', '.join(SINK_CLASSES)}") from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"sink {name!r} needs a package that is not installed ({exc.name}): "
                          "pip install logweave") from exc
    sink_class = getattr(module, class_name)
    sink: Sink = sink_class.from_settings(settings)
    return sink
