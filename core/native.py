"""Which per-line loops run in C and which in their Python reference, decided once per process.

The parse scan (agents/_linescan.c), the group fold (tables/_tracefold.c), the metric rules' field
reader (agents/_fieldscan.c), the intake's record and frame conversion (collectors/intake/_intakefast.c),
the file collector's CRI line scan (collectors/files/_filescan.c), the pod collector's block scan
(collectors/pods/_podscan.c), the sinks' per-stream marks (sinks/_marks.c), the file sink's line
selection (sinks/_segment.c) and Kafka's key hash (kafka_io/_murmur2.c) are optional: an
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
EXTENSIONS = {"line_scan": "agents._linescan", "trace_fold": "tables._tracefold", "field_scan": "agents._fieldscan",
              "intake_lines": "collectors.intake._intakefast", "pod_lines": "collectors.pods._podscan",
              "stream_marks": "sinks._marks",
              "segment_select": "sinks._segment", "murmur2": "kafka_io._murmur2",
              "file_scan": "collectors.files._filescan"}
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


def native_path(name: str) -> str:
    """`c` or `python (why)`: what this process runs for the loop `name`."""
    native_module(name)
    return _status[name]


WORKER_LOOPS = ("line_scan", "trace_fold")  # what the worker's /readyz and stats page report


def native_status(names: tuple[str, ...] = WORKER_LOOPS) -> dict[str, str]:
    """Per loop of `names`, `c` or `python (why)`: what this process runs."""
    return {name: native_path(name) for name in names}
