"""Reports a consumer group's coordination that died, so the process can end instead of idling unready.

aiokafka runs each group member's joins, syncs, heartbeats and autocommits in one background task
(`GroupCoordinator._coordination_routine`, created when the consumer starts). Errors it expects are
kept for the application's next `getmany`; anything else (a SyncGroup assignment that does not
decode, an assertion, a bug) ends the task for good, wrapped in `KafkaError("Unexpected error during
coordination ...")`. Nothing restarts it: the consumer is out of its group until the process ends.
The application sees it only when it next calls `getmany`/`position`, and faust calls those only for
partitions it holds, so a worker whose first join died waited for an assignment forever: up, never
ready, and holding its static member id, so no replacement could take its place.

`watch_group_coordinators(on_death)` adds a done-callback to every coordination task created in this
process from then on; a task that ends with an exception, other than while its consumer closes,
calls `on_death(group, innermost cause)` in the consumer's event loop. What to do about it (a worker
exits so that its supervisor restarts it) is the caller's choice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka.consumer.group_coordinator import GroupCoordinator

from core.redact import mask_text

CoordinatorDeath = Callable[[str, BaseException], None]
_PATCHED = "_logweave_coordinator_watch"
_handlers: list[CoordinatorDeath] = []  # the one installed handler (a list to replace it in place)


def watch_group_coordinators(on_death: CoordinatorDeath) -> None:
    """Call `on_death(group, cause)` when a group coordination task of this process dies (idempotent;
    a later call replaces the handler)."""
    _handlers[:] = [on_death]
    if getattr(GroupCoordinator, _PATCHED, False):
        return
    original_init = GroupCoordinator.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._coordination_task.add_done_callback(lambda task: _ended(self, task))

    GroupCoordinator.__init__ = __init__  # type: ignore[method-assign]
    setattr(GroupCoordinator, _PATCHED, True)


def _ended(coordinator: Any, task: asyncio.Task[None]) -> None:
    if task.cancelled() or task.exception() is None or coordinator._closing.done():
        return  # closed, or ended on close: the consumer is stopping anyway
    for handler in list(_handlers):
        handler(str(coordinator.group_id), root_cause(task.exception()))


def root_cause(exc: BaseException | None) -> BaseException:
    """The innermost `__cause__` (aiokafka wraps the real error in a KafkaError, the decoder in a ValueError)."""
    assert exc is not None
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def describe_death(group: str, cause: BaseException) -> str:
    """One line (secrets masked) naming the group and what ended its coordination."""
    kind = type(cause)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    detail = " ".join(str(cause).split()) or "no message"
    return mask_text(f"Kafka group coordination for group {group!r} died on an unexpected error "
                     f"({name}: {detail}); this member can no longer join its group")
