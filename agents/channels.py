"""The faust topic objects of the pipeline, built once per App from the settings.

Every record is a raw-bytes chunk (core/models.py): faust's per-message codecs are skipped on
purpose, since one record carries hundreds of lines that stages decode with orjson. The App is
passed in (agents sit below the App that registers them), so this module imports nothing above it.
"""

from __future__ import annotations

import faust

from core import topics
from core.settings import Settings


class Channels:
    """The faust topics of one App, by logical name (`logs.raw`, `sink.file`, ...)."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._app, self._settings = app, settings
        self._topics: dict[str, faust.TopicT] = {}

    def channel(self, logical_name: str) -> faust.TopicT:
        if logical_name not in self._topics:
            self._topics[logical_name] = self._app.topic(
                self._settings.topic(logical_name),
                key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                partitions=self._settings.kafka.partitions,
            )
        return self._topics[logical_name]

    def raw(self) -> faust.TopicT:
        return self.channel(topics.RAW)

    def parsed(self) -> faust.TopicT:
        return self.channel(topics.PARSED)

    def deadletter(self) -> faust.TopicT:
        return self.channel(topics.DEADLETTER)

    def traces_closed(self) -> faust.TopicT:
        return self.channel(topics.TRACES_CLOSED)

    def sink(self, name: str) -> faust.TopicT:
        return self.channel(topics.sink_topic(name))
