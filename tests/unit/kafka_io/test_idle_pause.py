"""IdlePause: how long a fetcher waits after an empty answer, and what starts the doubling over."""

from __future__ import annotations

from kafka_io.kafka_compat import FIRST_IDLE_PAUSE, IdlePause


def test_empty_answers_double_the_pause_up_to_the_cap() -> None:
    pause = IdlePause(cap=FIRST_IDLE_PAUSE * 5)
    waits = [pause.after(False) for _ in range(5)]
    assert waits == [FIRST_IDLE_PAUSE, FIRST_IDLE_PAUSE * 2, FIRST_IDLE_PAUSE * 4, FIRST_IDLE_PAUSE * 5,
                     FIRST_IDLE_PAUSE * 5]
    assert (pause.fetches, pause.empty) == (5, 5)


def test_data_resets_the_backoff_and_is_fetched_again_at_once() -> None:
    pause = IdlePause(cap=1.0)
    for _ in range(6):
        pause.after(False)
    assert pause.after(True) == 0.0
    assert pause.after(False) == FIRST_IDLE_PAUSE
    assert (pause.fetches, pause.empty) == (8, 7)


def test_a_wake_up_resets_the_backoff() -> None:
    pause = IdlePause(cap=1.0)
    for _ in range(6):
        pause.after(False)
    pause.woken()
    assert pause.after(False) == FIRST_IDLE_PAUSE


def test_a_larger_cap_lets_a_slow_follower_sleep_longer() -> None:
    pause = IdlePause(cap=0.5)
    assert max(pause.after(False) for _ in range(20)) == 0.5
