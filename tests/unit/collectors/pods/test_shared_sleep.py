"""sleep_until: tasks sleeping until one moment share one loop timer, wake at or after it, and a
cancelled sleeper leaves the others' wake-up alone."""

from __future__ import annotations

import asyncio
import time

from collectors.pods.shared_sleep import sleep_until


async def test_sleepers_until_one_moment_share_one_timer_and_wake_after_it() -> None:
    loop = asyncio.get_running_loop()
    # far enough ahead that it is still to come once the 100 sleepers run, on a loaded machine too (at
    # 50 ms it had passed there: the sleepers then yielded once instead, and no timer was counted)
    moment = loop.time() + 0.5
    woke: list[float] = []

    async def sleeper() -> None:
        await sleep_until(moment)
        woke.append(time.monotonic())

    before = len(loop._scheduled)  # type: ignore[attr-defined]
    tasks = [asyncio.create_task(sleeper()) for _ in range(100)]
    await asyncio.sleep(0)  # every sleeper is waiting now
    assert len(loop._scheduled) - before == 1  # type: ignore[attr-defined]
    await asyncio.gather(*tasks)
    assert len(woke) == 100 and min(woke) >= moment


async def test_a_cancelled_sleeper_leaves_the_others_asleep_until_the_moment() -> None:
    loop = asyncio.get_running_loop()
    moment = loop.time() + 0.05
    cancelled = asyncio.create_task(sleep_until(moment))
    other = asyncio.create_task(sleep_until(moment))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert cancelled.cancelled() and not other.done()
    await asyncio.wait_for(other, 1.0)
    assert loop.time() >= moment


async def test_a_moment_past_yields_to_the_loop_once() -> None:
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    loop.call_soon(ran.append, "callback")
    await sleep_until(loop.time() - 1.0)
    assert ran == ["callback"]
