"""The faust topic objects of the pipeline, built once from the settings.

Every record is a raw-bytes chunk (app/models.py): faust's per-message codecs are skipped on
purpose, since one record carries hundreds of lines that stages decode with orjson.
"""

from __future__ import annotations

from functools import cache

import faust

from app import topics
from app.faust_app import get_app, get_settings


@cache
def channel(logical_name: str) -> faust.TopicT:
    """The faust topic for a logical name such as `logs.raw` or `sink.file`."""
    settings = get_settings()
    return get_app().topic(
        settings.topic(logical_name),
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=settings.kafka.partitions,
    )


def raw() -> faust.TopicT:
    return channel(topics.RAW)


def parsed() -> faust.TopicT:
    return channel(topics.PARSED)


def deadletter() -> faust.TopicT:
    return channel(topics.DEADLETTER)


def traces_closed() -> faust.TopicT:
    return channel(topics.TRACES_CLOSED)


def sink(name: str) -> faust.TopicT:
    return channel(topics.sink_topic(name))
