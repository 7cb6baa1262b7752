"""A few seconds of every fuzz target in `make test`: the installed extensions, no sanitizers.

`make fuzz` runs each target for a minute under atheris with the C code built with ASan and UBSan;
this smoke keeps the targets themselves working and catches what shows up at once.
"""

from __future__ import annotations

import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import NATIVE, TARGETS, seeds


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_runs_clean_on_its_seeds_and_generated_inputs(name: str) -> None:
    native = importlib.import_module(NATIVE.get(name, "agents._linescan"))
    target = TARGETS[name]
    for seed in seeds():
        target(seed, native)

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=600))
    def run(data: bytes) -> None:
        target(data, native)

    run()
