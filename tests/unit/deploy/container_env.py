"""What a container's environment means to Logweave: load it the way the process would.

Shared by the Kubernetes and Compose checks so both hold every `LOGWEAVE_*` (and seed tool)
variable they set to the real settings model: a misspelt or invalid one fails the suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from core.settings import Settings, load_settings

SECRET_PLACEHOLDER = "from-a-secret"  # env entries filled by secretKeyRef/fieldRef at run time


def settings_from_env(env: Mapping[str, str], config_file: Path | None = None) -> Settings:
    """Settings as the container would load them; raises ConfigError naming the bad setting."""
    return load_settings(config_file, environ=dict(env))
