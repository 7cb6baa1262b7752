"""How every Logweave process ends when it cannot start: one line on stderr, no traceback.

The worker (faust CLI), the collectors, `logweave prepare`, replay and `check-config` all end this
way, so an operator sees the same line whichever process met the bad setting or the silent broker.
Exit status 2 means a setting is wrong, 3 that Kafka did not answer. A worker that was running
exits with 4 when its consumer group coordination died and it can no longer join its group
(app/group_membership.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from core.errors import BrokerUnreachable, ConfigError
from core.redact import mask_text

T = TypeVar("T")
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_COORDINATION = 4
FATAL_AT_START = (ConfigError, BrokerUnreachable)


def exit_status(exc: ConfigError | BrokerUnreachable) -> int:
    return EXIT_UNREACHABLE if isinstance(exc, BrokerUnreachable) else EXIT_CONFIG


def report(exc: ConfigError | BrokerUnreachable) -> int:
    """Print the one line for `exc` and return the exit status that goes with it."""
    print(mask_text(f"logweave: {exc}"), file=sys.stderr, flush=True)
    return exit_status(exc)


def fail(exc: ConfigError | BrokerUnreachable) -> NoReturn:
    raise SystemExit(report(exc)) from None


def run_or_exit(main: Callable[[], T]) -> T:
    """Run `main`; a bad setting or an unreachable broker ends the process with its one line."""
    try:
        return main()
    except FATAL_AT_START as exc:
        fail(exc)
