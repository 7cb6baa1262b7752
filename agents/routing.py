"""Routing rules: which sinks a line (per-line rules) or a whole trace (trace rules) goes to.

Pure logic. With no rules configured every line goes to every enabled sink. A per-line rule
forwards at once; a trace rule (tail-based selection) makes the group stage hold the trace's
lines until it closes and forward them all if any line of the trace matched.
"""

from __future__ import annotations

from typing import Any

from agents.line_filter import LineFilter
from agents.transforms import Transformer, transformer_for
from core.models import LEVEL_RANK
from core.settings import RouteRule, RoutingSettings

Delivery = tuple[str, list[Any]]  # (sink name, the line as the rule sends it)


class CompiledRule:
    """A RouteRule with its predicates compiled (agents/line_filter.py) and its transforms."""

    def __init__(self, rule: RouteRule, enabled: list[str]) -> None:
        self.rule = rule
        self.name = rule.name
        self.mode = rule.mode
        self.sinks = tuple(s for s in rule.sinks if s in enabled)
        self.filter = LineFilter(rule)
        self.matches = self.filter.matches
        self.transformer: Transformer | None = transformer_for(rule.name, rule.transforms)

    def deliveries(self, line: list[Any], sources: list[dict[str, Any]], trace_errors: bool | None,
                   taken: set[str], out: list[Delivery]) -> None:
        """Add (sink, line as transformed) for this rule's sinks not `taken` by an earlier rule."""
        sinks = [s for s in self.sinks if s not in taken]
        if not sinks:
            return
        entry = line if self.transformer is None else self.transformer.apply(line, sources, trace_errors)
        if entry is None:
            return
        taken.update(sinks)
        out.extend((sink, entry) for sink in sinks)


def validate_rules(routing: RoutingSettings) -> None:
    """Raise ValueError naming the rule if a regex or level does not compile."""
    for rule in routing.rules:
        problem = rule.problem()
        if problem is not None:
            raise ValueError(f"routing rule {rule.name!r}: {problem}")
        level = rule.transforms.drop_below
        if level and level.lower() not in LEVEL_RANK:
            raise ValueError(f"routing rule {rule.name!r}: transforms.drop_below {level!r} is not one of "
                             f"{', '.join(LEVEL_RANK)}")


class Router:
    """Decides destinations; one per worker."""

    def __init__(self, routing: RoutingSettings, enabled: list[str]) -> None:
        validate_rules(routing)
        self.enabled = tuple(enabled)
        rules = [CompiledRule(r, enabled) for r in routing.rules]
        self.line_rules = [r for r in rules if r.mode == "line"]
        self.trace_rules = [r for r in rules if r.mode == "trace"]
        self.default_all = not rules
        # trace rules of earlier live versions (agents/live_rules.py) that this one dropped or renamed:
        # traces they matched before the switch are still delivered by them when they close
        self.retired: dict[str, CompiledRule] = {}

    def inherit(self, previous: Router) -> None:
        """Keep `previous`'s trace rules this router has no rule of the same name for (see `retired`)."""
        current = {rule.name for rule in self.trace_rules}
        older = [*previous.retired.values(), *previous.trace_rules]
        self.retired = {rule.name: rule for rule in older if rule.name not in current}

    def line_sinks(self, line: list[Any], sources: list[dict[str, Any]]) -> tuple[str, ...]:
        """Sinks a line goes to at once."""
        if self.default_all:
            return self.enabled
        out: tuple[str, ...] = ()
        for rule in self.line_rules:
            if rule.matches(line, sources):
                out += tuple(s for s in rule.sinks if s not in out)
        return out

    def line_deliveries(self, line: list[Any], sources: list[dict[str, Any]]) -> list[Delivery]:
        """Where a line goes at once, as each line rule's transforms leave it (the first rule naming a
        sink decides what that sink gets)."""
        if self.default_all:
            return [(sink, line) for sink in self.enabled]
        out: list[Delivery] = []
        taken: set[str] = set()
        for rule in self.line_rules:
            if rule.matches(line, sources):
                rule.deliveries(line, sources, None, taken, out)
        return out

    def trace_deliveries(self, matched_rules: list[str], line: list[Any], sources: list[dict[str, Any]],
                         trace_errors: bool | None) -> list[Delivery]:
        """Where a held line of a closing trace goes, as the matched trace rules' transforms leave it."""
        out: list[Delivery] = []
        taken: set[str] = set()
        for rule in self.trace_rules:
            if rule.name in matched_rules:
                rule.deliveries(line, sources, trace_errors, taken, out)
        for name in matched_rules:
            retired = self.retired.get(name)
            if retired is not None:
                retired.deliveries(line, sources, trace_errors, taken, out)
        return out

    def trace_rule_hits(self, line: list[Any], sources: list[dict[str, Any]]) -> list[str]:
        """Names of trace rules this line satisfies (the trace then matches them)."""
        return [rule.name for rule in self.trace_rules if rule.matches(line, sources)]

    def trace_sinks(self, matched_rules: list[str]) -> tuple[str, ...]:
        out: tuple[str, ...] = ()
        for rule in self.trace_rules:
            if rule.name in matched_rules:
                out += tuple(s for s in rule.sinks if s not in out)
        return out
