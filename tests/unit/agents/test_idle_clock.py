"""IdleClock: idle time counts only over caught-up ticks, and a stall is credited as one short tick."""

from __future__ import annotations

from agents.idle_clock import IdleClock

S = 1_000_000_000


def test_the_clock_runs_only_while_caught_up() -> None:
    clock = IdleClock(max_step_ns=2 * S)
    assert clock.now(0, 100 * S) == 100 * S
    clock.tick([0], 100 * S)
    clock.tick([0], 101 * S)
    clock.tick([], 102 * S)  # behind: this second does not count
    clock.tick([0], 103 * S)
    assert clock.now(0) == 102 * S  # one second behind the wall clock


def test_a_stall_counts_as_one_short_tick() -> None:
    clock = IdleClock(max_step_ns=2 * S)
    clock.tick([0], 0)
    clock.now(0, 0)
    clock.tick([0], 60 * S)  # a process stopped for a minute, its last fetch still says caught up
    assert clock.now(0) == 2 * S


def test_a_forgotten_partition_restarts_at_the_wall_clock() -> None:
    clock = IdleClock(max_step_ns=S)
    clock.now(3, 5 * S)
    clock.forget([3])
    assert clock.now(3, 9 * S) == 9 * S


def test_a_resumed_partition_continues_from_its_stored_stamp() -> None:
    clock = IdleClock(max_step_ns=S)
    clock.now(1, 500 * S)
    clock.resume(1, 100 * S)
    assert clock.now(1, 900 * S) == 100 * S
