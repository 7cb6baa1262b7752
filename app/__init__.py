"""Logweave's core package. `faust -A app worker` finds the App as `app.app`.

The App is built lazily (PEP 562 module `__getattr__`) so that collectors, which import
`app.settings` and `app.models`, never import faust: a collector must stay small.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from app.faust_app import load_worker

        return load_worker()
    raise AttributeError(f"module 'app' has no attribute {name!r}")
