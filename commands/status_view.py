"""The text of `logweave status`: the pipeline summary (core/heartbeat.py) laid out for 80 columns.

Pure formatting, so what an operator reads can be tested line by line: stages in pipeline order
with their rates and lag, every component with its state and version, sinks, traces, and dead
letters by reason with the latest example line.
"""

from __future__ import annotations

import time
from typing import Any

WIDTH = 80


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10_000:
        return f"{value:,.0f}"
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            scaled = value / size
            return f"{scaled:.1f}{unit}" if scaled < 100 else f"{scaled:.0f}{unit}"
    return f"{value:.0f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 100:
        return f"{value:.0f}s"
    if value < 6000:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _fit_middle(text: str, width: int) -> str:
    """Cut from the middle: a component id's end (port, sink) is what tells two apart."""
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    return text[:head] + "…" + text[-(width - 1 - head):]


def render(summary: dict[str, Any], width: int = WIDTH) -> list[str]:
    """The status screen as lines of at most `width` characters."""
    components = summary["components"]
    states: dict[str, int] = {}
    for component in components:
        states[component["state"]] = states.get(component["state"], 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    out = [f"Logweave pipeline at {time.strftime('%H:%M:%S', time.localtime(summary['at']))}: "
           f"{len(components)} components ({counts or 'none'})", ""]
    if not components:
        return [*out, "No heartbeats yet: is anything running against this broker?"]
    out.append(f"{'STAGE':<16}{'IN lines/s':>11}{'OUT lines/s':>12}{'LAG':>9}{'COMPONENTS':>12}")
    for stage in summary["stages"]:
        out.append(f"{stage['kind']:<16}{_count(stage['lines_in_per_s']):>11}{_count(stage['lines_out_per_s']):>12}"
                   f"{_count(stage['lag']):>9}{stage['components']:>12}")
    out += ["", f"{'COMPONENT':<38}{'STATE':<9}{'VERSION':<10}{'IN/s':>7}{'OUT/s':>7}{'LAG':>8}"]
    for c in components:
        out.append(f"{_fit_middle(c['id'], 37):<38}{c['state']:<9}{_fit(c['version'], 9):<10}"
                   f"{_count(c['lines_in_per_s']):>7}{_count(c['lines_out_per_s']):>7}{_count(c['lag']):>8}")
    workers = [c for c in components if c["kind"] == "worker" and c["state"] == "running"]
    if workers:
        open_traces = sum(c["figures"].get("open_traces", 0.0) for c in workers)
        closed = sum(c["figures"].get("traces_closed_per_minute", 0.0) for c in workers)
        out += ["", f"TRACES  open {_count(open_traces)}, closed {_count(closed)} per minute"]
    if summary["sinks"]:
        out += ["", f"{'SINK':<14}{'STATE':<9}{'OUT/s':>7}{'LAG':>8}{'CATCH-UP':>10}{'UNWRITTEN':>11}  LAST ERROR"]
        for sink in summary["sinks"]:
            line = (f"{_fit(sink.get('name', '?'), 13):<14}{sink.get('state', '?'):<9}"
                    f"{_count(sink['lines_out_per_s']):>7}{_count(sink['lag']):>8}{_seconds(sink['lag_seconds']):>10}"
                    f"{_seconds(sink.get('oldest_unwritten_age')):>11}  {sink.get('last_error') or '-'}")
            out.append(_fit(line, width))
    dead = summary["dead_letters"]
    if dead:
        out += ["", f"DEAD LETTERS ({_count(sum(d['count'] for d in dead.values()))} since the components started)"]
        for reason, entry in sorted(dead.items(), key=lambda item: -item[1]["count"]):
            out.append(_fit(f"  {reason:<24}{_count(entry['count']):>8}", width))
            if entry["example"]:
                out.append(_fit("    e.g. " + " ".join(entry["example"].split()), width))
    return [_fit(line, width) for line in out]
