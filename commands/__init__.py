"""Operator commands (`logweave ...`): broker, collectors, demo, prepare, check-config, replay.

The top layer: it may import everything below it, and nothing imports it."""
