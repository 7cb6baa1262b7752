"""The one batch contract every sink implements: start / write_batch / stop (docs/sinks.md).

The drain agent (agents/drain.py) owns batching, retries, the circuit breaker, dead letters and
acks; a sink only writes one batch of lines from one sink-topic partition and reports, per line,
what failed permanently and what may be retried. Writes must be idempotent: keyed by
`SinkLine.line_id` (the source identity) or by the batch's topic/partition/offsets, so a retried
or replayed batch overwrites instead of duplicating.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from core.settings import Group

if TYPE_CHECKING:
    from core.settings import Settings
    from sinks.packed import PackedRecord

SettingsGroup = Group  # base for a plugin's settings model: unknown keys refused, `a,b` strings as lists

@dataclass(slots=True)
class SinkLine:
    """One line bound for a sink: its final JSON document and everything keys are derived from."""

    line_id: str  # stable identity of the source line (core.models.line_id)
    trace_id: str
    time_ns: int  # event time, UTC nanoseconds
    level: str
    service: str
    document: bytes  # the original JSON object plus Logweave metadata under the reserved key
    offset: int  # offset of the Kafka record (chunk) on the sink topic
    index: int  # index of the line inside that chunk
    ordered: bool = True  # False when the chunk does not keep per-stream position order


@dataclass(slots=True)
class SinkBatch:
    """Lines from one sink-topic partition, in offset order: as `lines`, or, for a sink with
    `takes_packed`, as whole records in `packed` (sinks/packed.py) with `lines` empty."""

    topic: str
    partition: int
    lines: list[SinkLine]
    known_size: int = -1  # the documents' total size when the drain knows it already (-1: count it)
    packed: list[PackedRecord] = field(default_factory=list)

    @property
    def first_offset(self) -> int:
        return self.lines[0].offset if self.lines else self.packed[0].offset

    @property
    def last_offset(self) -> int:
        return self.lines[-1].offset if self.lines else self.packed[-1].offset

    @property
    def line_count(self) -> int:
        return len(self.lines) + sum(record.count for record in self.packed)

    @property
    def size_bytes(self) -> int:
        if self.known_size < 0:
            self.known_size = (sum(len(line.document) for line in self.lines)
                               + sum(record.size_bytes for record in self.packed))
        return self.known_size


class NeedsLines(Exception):
    """Raised by a sink with `takes_packed`, before it writes anything, for a packed batch it cannot write
    packed: a line it must refuse by itself (an object-store sink's out-of-range event time), which needs
    a SinkLine for its dead letter. The drain hands the same records again as SinkLines (`lines`)."""


@dataclass(slots=True)
class ItemFailure:
    """A line the sink could not write, with a machine-readable reason and the server's words."""

    line: SinkLine
    reason: str
    detail: str


@dataclass(slots=True)
class WriteResult:
    """Outcome of write_batch: lines not listed in `permanent` or `retry` were written."""

    permanent: list[ItemFailure] = field(default_factory=list)
    retry: list[ItemFailure] = field(default_factory=list)


class Sink(ABC):
    """A destination. Raise core.errors.RetriableError when the whole batch should be retried."""

    name: ClassVar[str]
    settings_model: ClassVar[type[BaseModel] | None] = None  # plugins: the model of `sinks.<name>`

    @classmethod
    def from_settings(cls, settings: Settings) -> Sink:
        """Build the sink from the effective settings; plugins get their validated `sinks.<name>` group."""
        return cls(settings.sinks.plugin(cls.name))  # type: ignore[call-arg]
    accepts_closed_traces: ClassVar[bool] = False  # True: the drain also feeds it traces.closed
    # True: the drain hands whole records packed (SinkBatch.packed, sinks/packed.py) instead of a SinkLine
    # per line; such a sink reports failures for the whole batch only (raises), never per line, or raises
    # NeedsLines to get that batch as SinkLines, where it may report them per line.
    takes_packed: ClassVar[bool] = False
    # Batches of one take the drain writes at once. Above 1 only for a sink whose writes commute: every
    # write keyed by line id and none depending on the one before (etcd), so no batch waits for the
    # slowest request of the one before it. Acks still wait for all of them. Packed batches (takes_packed)
    # are for sinks that keep a position, and always go one at a time.
    concurrent_batches: ClassVar[int] = 1

    @abstractmethod
    async def start(self) -> None:
        """Connect, create indices/buckets/templates; raise RetriableError if the server is away."""

    def batch_limits(self) -> tuple[int, int, float]:
        """(max lines, max bytes, max wait seconds) of one batch; the drain gathers up to these."""
        raise NotImplementedError(f"{type(self).__name__} must define batch_limits()")

    @abstractmethod
    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        """Write every line of `batch` idempotently; return per-line failures."""

    @abstractmethod
    async def stop(self) -> None:
        """Flush and close connections."""

    async def resume_offset(self, topic: str, partition: int) -> int | None:
        """Sinks that skip lines at or below a recorded position: the sink-topic offset of the last
        record written for this partition (lines after it are written). None for sinks that upsert
        and accept records in any order. A replay never starts after it, which would leave a gap."""
        return None

    async def write_closed_traces(self, summaries: list[dict[str, Any]]) -> None:
        """Store closed trace summaries idempotently (by close id); raise RetriableError to be retried.
        Only sinks with `accepts_closed_traces` are called."""
        raise NotImplementedError(f"{type(self).__name__} does not store closed traces")
