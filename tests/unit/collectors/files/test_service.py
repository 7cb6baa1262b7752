"""The collector process stays light: importing its entry point loads no faust (nor mode, agents, tables)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_importing_the_file_collector_loads_no_faust() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import collectors.files.service"],
                            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[4])
    modules = {row.split("|")[-1].strip().split(".")[0] for row in result.stderr.splitlines() if "|" in row}
    assert "collectors" in modules and "aiokafka" in modules  # the output really lists what was imported
    assert not modules & {"faust", "mode", "agents", "tables", "sinks"}
