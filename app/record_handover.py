"""faust's consumer loop hands each fetched record to its stream inline, not through four tasks.

faust's `Consumer._drain_messages` hands every record to its stream's queue with
`wait_first(callback(record), suspend_flow.wait())`: four tasks (the callback, the suspend-flow
event, the consumer's stopped and crashed events), an `asyncio.wait` and three cancellations, about
three event-loop turns per record, each an `epoll_wait` and often a GIL hand-over to the consumer
thread. The callback only puts the record on its stream's queue; it waits only when that queue is
full. Each fetched batch also began with `Service.sleep(0)`, a task and a cancellation of its own.

`hand_over_records_inline()` replaces the loop with faust 0.15.3's own (`FAUST_LOOP_SHA256` is its
source; tests/unit/app/test_record_handover.py fails when faust's changes, so the copy is reviewed)
with two changes:
- the callback runs inline up to its first suspension. When it completes without one (its queue had
  room: the common case) that is the whole hand-over; when it suspends (a full queue), it goes on
  under faust's `wait_first`, so a suspended flow or a stop still abandons it as before. A flow
  already suspended takes faust's path from the start;
- the yield at the top of each fetched batch is `asyncio.sleep(0)`.
Everything else (read offsets, gap tracking, commits every `commit_every` acks, stop handling) is
faust's code unchanged.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer

FAUST_LOOP_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"  # faust 0.15.3's source
_PATCHED = "_logweave_inline_handover"


def hand_over_records_inline() -> None:
    """Replace faust's aiokafka Consumer's record loop once per process (idempotent)."""
    if getattr(Consumer, _PATCHED, False):
        return
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    setattr(Consumer, _PATCHED, True)


async def hand_over(consumer: Any, handing: Coroutine[Any, Any, Any]) -> None:
    """Run `handing` (a record's callback) inline; if it suspends, finish it under faust's `wait_first`
    beside the suspend-flow event, as faust's loop does."""
    try:
        pending = handing.send(None)
    except StopIteration:
        return
    await consumer.wait_first(_go_on(handing, pending), consumer.suspend_flow.wait())


async def _go_on(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _continued(coro, pending)


@types.coroutine
def _continued(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    """Drive `coro`, which has already yielded `pending` to its first driver, as `yield from` would:
    what the task sends or throws in goes on to `coro` (a cancellation included)."""
    to_yield = pending
    while True:
        try:
            sent = yield to_yield
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task (a cancellation): coro's to handle
            try:
                to_yield = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                to_yield = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - faust's loop, see above
    # faust 0.15.3 Consumer._drain_messages; changes marked "logweave:"
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    flow_suspended = self.suspend_flow.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await sleep(0)  # logweave: was self.sleep(0), a task and its cancellation
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if flow_suspended():  # logweave: faust's path while the flow is suspended
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        else:  # logweave: inline, faust's wait_first only if it suspends
                            await hand_over(self, cast(Coroutine[Any, Any, Any], callback(message)))
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)
