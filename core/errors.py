"""One exception hierarchy for Logweave, so callers can tell what to retry.

`RetriableError` means "try again later, nothing is wrong with the data";
`PermanentError` means "retrying will not help: dead-letter it or fix config".
"""

from __future__ import annotations


class LogweaveError(Exception):
    """Base of every error Logweave raises on purpose."""


class ConfigError(LogweaveError):
    """A setting has a value that is not allowed; the message names it and what is allowed."""


class RetriableError(LogweaveError):
    """A transient failure (timeout, 429, 5xx, broker away): retry with backoff."""


class PermanentError(LogweaveError):
    """A failure that retrying cannot fix (bad data, 4xx mapping error, over a hard limit)."""


class ChunkFormatError(PermanentError):
    """A Kafka record is not a Logweave chunk this release can read."""


class BrokerUnreachable(RetriableError):
    """No broker answered within `kafka.connect_timeout`; the message names the addresses tried."""
