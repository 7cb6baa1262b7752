"""Which per-line loops run in C and which in their Python reference, decided once per process.

The parse scan (agents/_linescan.c), the group fold (tables/_tracefold.c) and the metric rules' field
reader (agents/_fieldscan.c) are optional: an
install without a C compiler skips them, and `LOGWEAVE_PURE=1` turns them off at run time (to
compare, or to rule them out when chasing a bug). Callers ask here instead of importing the
extension themselves, so the stats page and `/readyz` can say which path is active and why.
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from types import ModuleType

PURE_ENV = "LOGWEAVE_PURE"
EXTENSIONS = {"line_scan": "agents._linescan", "trace_fold": "tables._tracefold", "field_scan": "agents._fieldscan"}
_status: dict[str, str] = {}


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@cache
def native_module(name: str) -> ModuleType | None:
    """The compiled extension `name` (one of EXTENSIONS), or None when the Python path must run."""
    module = EXTENSIONS[name]
    if pure_requested():
        _status[name] = f"python ({PURE_ENV}=1)"
        return None
    try:
        loaded = importlib.import_module(module)
    except ImportError:
        _status[name] = "python (C extension not built: install with a C compiler and Python headers)"
        return None
    _status[name] = "c"
    return loaded


def native_status() -> dict[str, str]:
    """Per loop, `c` or `python (why)`: what this process runs."""
    for name in EXTENSIONS:
        native_module(name)
    return dict(_status)
