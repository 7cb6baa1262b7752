"""Sinks, created by name from the one registry (core/sink_registry.py): built-ins are imported
only when enabled, so unused clients are never loaded; plugins come from `logweave.sinks` entry points."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.sink_registry import BUILTIN_SINKS, load_plugin, missing_package

if TYPE_CHECKING:
    from core.settings import Settings
    from sinks.base import Sink


def create_sink(name: str, settings: Settings) -> Sink:
    """Instantiate the sink called `name` from the settings (`sinks.<name>` group)."""
    builtin = BUILTIN_SINKS.get(name)
    if builtin is None:
        sink_class = load_plugin(name)
    else:
        missing = missing_package(name)
        if missing:
            raise ConfigError(missing)
        module_name, class_name = builtin.target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f"pip install 'logweave[{builtin.extra}]'" if builtin.extra else "pip install logweave"
            raise ConfigError(f"sink {name!r} needs a package that is not installed ({exc.name}): {hint}") from exc
        sink_class = getattr(module, class_name)
    sink: Sink = sink_class.from_settings(settings)
    return sink
