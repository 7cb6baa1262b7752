"""When the read loop stops and resumes taking inotify's per-write events (collectors/files/write_events.py)."""

from __future__ import annotations

from collectors.files.write_events import MIN_FILES, PASSES, WriteEventsPolicy


def run(policy: WriteEventsPolicy, taking: bool, followed: int, fresh: int, passes: int) -> list[bool]:
    """The decision after each of `passes` passes alike, the state carried from one to the next."""
    decisions = []
    for _ in range(passes):
        taking = policy.decide(taking, followed, fresh)
        decisions.append(taking)
    return decisions


def test_events_stop_only_after_passes_in_a_row_with_new_lines_in_most_files() -> None:
    policy = WriteEventsPolicy()
    assert run(policy, True, 200, 200, PASSES - 1) == [True] * (PASSES - 1)
    assert policy.decide(True, 200, 100) is True  # a pass with new lines in half the files starts over
    assert run(policy, True, 200, 150, PASSES) == [True] * (PASSES - 1) + [False]  # 75%: hot


def test_events_resume_once_fewer_than_half_the_files_are_written_in_passes_in_a_row() -> None:
    policy = WriteEventsPolicy()
    assert run(policy, False, 200, 120, 3 * PASSES) == [False] * (3 * PASSES)  # 60%: between, no change
    assert run(policy, False, 200, 99, PASSES) == [False] * (PASSES - 1) + [True]
    assert run(policy, True, 200, 120, 3 * PASSES) == [True] * (3 * PASSES)  # and no flapping back


def test_a_few_files_always_take_events() -> None:
    policy = WriteEventsPolicy()
    assert run(policy, True, MIN_FILES - 1, MIN_FILES - 1, 3 * PASSES) == [True] * (3 * PASSES)
    assert policy.decide(False, MIN_FILES - 1, MIN_FILES - 1) is True  # off, and the files went: on again
