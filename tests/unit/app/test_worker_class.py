"""The worker class leaves the root logger at the `-l` level: faust's own sets it to DEBUG at WARN and
above, after which every debug call in aiokafka, faust and mode builds a LogRecord for nothing."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import faust
import pytest

from app.faust_app import create_app
from app.worker_class import LogweaveWorker
from core.settings import Settings


@pytest.fixture()
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def set_up_logging(worker_class: type[faust.Worker], loglevel: str) -> None:
    """What `faust worker -l <loglevel>` does to the root logger, without starting anything."""
    app = faust.App("logweave-test-worker-class", autodiscover=False)
    worker = worker_class(app, loglevel=loglevel, stdout=io.StringIO(), stderr=io.StringIO(), redirect_stdouts=False)
    worker._setup_logging()


@pytest.mark.parametrize("loglevel, level", [("warn", logging.WARNING), ("error", logging.ERROR),
                                             ("info", logging.INFO)])
def test_root_logger_stays_at_the_level_asked_for(restore_root_logger: None, loglevel: str, level: int) -> None:
    set_up_logging(LogweaveWorker, loglevel)
    assert logging.getLogger().level == level
    assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("aiokafka").isEnabledFor(level)


def test_fausts_own_worker_would_turn_debug_on_at_warn(restore_root_logger: None) -> None:
    """The defect the class exists for, so this test notices when a faust release fixes it."""
    set_up_logging(faust.Worker, "warn")
    assert logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)


def test_the_app_runs_the_logweave_worker() -> None:
    assert create_app(Settings()).conf.Worker is LogweaveWorker
