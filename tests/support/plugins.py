"""Installs the example sink plugin (examples/webhook-sink) into the test venv when it is missing.

`make install` installs it too; this makes `pytest` alone work from a clean clone. The installed
copy is replaced when its module differs from the source tree's, so edits to the example are tested.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_PLUGIN = ROOT / "examples" / "webhook-sink"


def ensure_plugin(source: Path = WEBHOOK_PLUGIN, module: str = "logweave_webhook_sink") -> None:
    spec = importlib.util.find_spec(module)
    wanted = (source / module / "__init__.py").read_bytes()
    if spec is not None and spec.origin and Path(spec.origin).read_bytes() == wanted:
        return
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"pip install {source} failed:\n{run.stdout}\n{run.stderr}"
    importlib.invalidate_caches()
    sys.modules.pop(module, None)
