"""The worker's roof: the faust App, its stage registration, table registration and web views.

`faust -A app worker` finds the App as `app.app`. It is built lazily (PEP 562 module `__getattr__`)
so that importing anything below (core settings, models) never pulls faust in.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from app.faust_app import load_worker

        return load_worker()
    raise AttributeError(f"module 'app' has no attribute {name!r}")
