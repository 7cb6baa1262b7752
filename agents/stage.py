"""What the App hands each stage when it registers it: the App, its settings and its topics.

Stages (agents/parse.py, group.py, drain.py) are registered by the App (app/faust_app.py) rather
than importing it, so the import graph runs one way: app -> agents -> tables -> core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import faust

from agents.backlog import SourceProgress
from agents.channels import Channels
from agents.live_rules import LiveRules
from core.settings import Settings
from tables.trace_table import TraceWindowTable


@dataclass(frozen=True)
class StageContext:
    app: faust.App
    settings: Settings
    channels: Channels
    trace_table: Callable[[], TraceWindowTable]
    table_restored: Callable[[], bool]  # the table holds all its owned partitions' state (no rebalance, recovered)
    progress: SourceProgress = field(default_factory=SourceProgress)  # what each stage has processed
    rules: LiveRules | None = None  # live parse and routing rules (agents/live_rules.py); None: settings only
