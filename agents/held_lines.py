"""Lines held for whole-trace rules until their trace closes, bounded, and released past a bound.

A `mode: trace` routing rule decides on the whole trace, so its lines wait in the trace's state. The
count per partition is stored with the table (HELD_KEY), so the bound survives restarts. Past a
bound a trace overflows once, with a warning naming it: by default its held lines and every later
line go to the trace rules' sinks at once (`traces.held_overflow=release`), or the lines past the
bound are dropped (`drop`, an explicit choice). The trace's summary says which.
"""

from __future__ import annotations

import logging
from typing import Any

from agents.routing import Router
from core.metrics import HELD_LINES, HELD_OVERFLOW
from core.models import P_SRC
from core.settings import TraceSettings
from tables.trace_table import HELD_KEY, TraceWindowTable

log = logging.getLogger(__name__)


class HeldLines:
    """The group stage's held lines, per partition of one worker's trace table."""

    def __init__(self, table: TraceWindowTable, router: Router, traces: TraceSettings) -> None:
        self.table, self.router, self.traces = table, router, traces
        self.held: dict[int, int] = {}

    def count(self, partition: int) -> int:
        """Lines held in `partition` (kept in its store, so the bound survives restarts)."""
        if partition not in self.held:
            raw = self.table.read(partition, HELD_KEY)
            self.held[partition] = int(raw) if raw else 0
        return self.held[partition]

    def hold(self, partition: int, state: dict[str, Any], fresh: list[list[Any]], sources: list[dict[str, Any]],
              routed: dict[str, list[list[Any]]]) -> None:
        """Keep lines for trace rules until the trace closes, bounded per trace and per partition.

        Past a bound the trace overflows, once, with a warning naming it. `held_overflow=release` (the
        default) sends its held lines and every later one to the trace rules' sinks at once: selection
        is lost for that trace, no line is, and its state stops growing. `drop` counts and drops the
        lines past the bound. The summary says which (`overflow`) and how many lines (`held_overflow`).
        """
        held: list[Any] = state.setdefault("held", [])
        matched: list[str] = state.setdefault("matched", [])
        total = self.count(partition)
        policy = self.traces.held_overflow
        for line in fresh:
            for name in self.router.trace_rule_hits(line, sources):
                if name not in matched:
                    matched.append(name)
            overflow = state.get("overflow")
            bound = ("trace" if len(held) >= self.traces.max_held_per_trace
                     else "partition" if total >= self.traces.max_held_per_partition else "")
            if overflow is None and not bound:
                held.append([sources[line[P_SRC]], line])
                total += 1
                continue
            if overflow is None:
                self._warn_overflow(state, bound, policy)
                if policy == "release":
                    total -= self._overflow(state, routed, sources)
            state["held_overflow"] = state.get("held_overflow", 0) + 1
            HELD_OVERFLOW.labels(state["overflow_bound"], policy).inc()
            if policy == "release":  # every trace rule's transforms still apply
                for sink_name, entry in self.router.trace_deliveries(self._trace_rule_names(), line, sources, None):
                    routed[sink_name].append(entry)
        self.held[partition] = total
        HELD_LINES.set(sum(self.held.values()))

    def _trace_rule_names(self) -> list[str]:
        return [rule.name for rule in self.router.trace_rules]

    def _trace_rule_sinks(self) -> tuple[str, ...]:
        return self.router.trace_sinks(self._trace_rule_names())

    def _overflow(self, state: dict[str, Any], routed: dict[str, list[list[Any]]],
                  sources: list[dict[str, Any]]) -> int:
        """Release a trace's held lines to every trace rule's sinks; return how many were held."""
        held = state["held"]
        queue_held(held, self.router, self._trace_rule_names(), None, routed, sources)
        state["held"] = []
        return len(held)

    def _warn_overflow(self, state: dict[str, Any], bound: str, policy: str) -> None:
        state["overflow"] = "released" if policy == "release" else "dropped"
        state["overflow_bound"] = bound
        limit = (f"traces.max_held_per_trace={self.traces.max_held_per_trace}" if bound == "trace"
                 else f"traces.max_held_per_partition={self.traces.max_held_per_partition}")
        if policy == "release":
            log.warning("trace %s: %d lines held for trace rules reached %s; releasing them and the trace's "
                        "later lines to sinks %s without waiting for the trace to close (traces.held_overflow=release)",
                        state["trace"], len(state["held"]), limit, ", ".join(self._trace_rule_sinks()))
        else:
            log.warning("trace %s: %d lines held for trace rules reached %s; dropping the trace's later lines "
                        "(traces.held_overflow=drop), counted in logweave_held_overflow_total", state["trace"],
                        len(state["held"]), limit)

    def release(self, partition: int, state: dict[str, Any], routed: dict[str, list[list[Any]]],
                      sources: list[dict[str, Any]]) -> None:
        """Queue a closing trace's held lines for the sinks of the trace rules it matched."""
        held = state.pop("held", None)
        matched = state.pop("matched", [])
        if held:
            self.held[partition] = max(0, self.count(partition) - len(held))
            HELD_LINES.set(sum(self.held.values()))
        if not held or not matched:
            return
        queue_held(held, self.router, matched, state.get("errors", 0) > 0, routed, sources)

    def forget(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.held.pop(partition, None)


def queue_held(held: list[Any], router: Router, matched: list[str], trace_errors: bool | None,
               routed: dict[str, list[list[Any]]], sources: list[dict[str, Any]]) -> None:
    """Queue held [source, line] pairs for the sinks of the `matched` trace rules, as their transforms leave
    each line, which points at its source appended to `sources`."""
    for src, line in held:
        sources.append(src)
        entry = list(line)
        entry[P_SRC] = len(sources) - 1
        for sink_name, sent in router.trace_deliveries(matched, entry, sources, trace_errors):
            routed[sink_name].append(sent)
