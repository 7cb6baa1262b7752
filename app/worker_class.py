"""The worker class `faust -A app worker` runs: faust's, with the root logger left at the level given.

faust's Worker draws a progress spinner on start-up and, when the log level is WARN or above (the
Procfile's and `logweave run`'s `-l warn`), sets the root logger to DEBUG so that every log call can
turn the spinner. It never sets it back. Every `log.debug` in aiokafka, faust and mode then builds a
LogRecord and hands it to the handlers, which drop it: thousands a second on a live node's worker,
some quoting a whole Kafka record. At 200 pods x 20 lines/s the worker run with `-l warn` spent 13.1-13.8
CPU s per 100K lines against 2.4-2.7 with `-l info` (most of it masking those records' text, which
core/redact.py now does only for records a handler formats); faust alone moving that node's records
spent 7-10% more CPU at `-l warn`. This class lets faust set up its handlers and spinner, then puts the
root logger back at the level asked for, so a debug call costs one cached level check again. The
spinner still turns for what is logged at that level.
"""

from __future__ import annotations

import logging

import faust


class LogweaveWorker(faust.Worker):  # type: ignore[misc]
    """faust's Worker whose root logger stays at the `-l` level once logging is set up."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        if level:
            logger.setLevel(level)
