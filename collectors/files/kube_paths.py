"""Kubernetes metadata from log paths: `/var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log`.

`/var/log/containers/<pod>_<ns>_<container>-<id>.log` symlinks point into that tree; their target
is resolved so both spellings give the same metadata and the same file identity.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_POD_DIR = re.compile(r"^(?P<ns>[^_]+)_(?P<pod>[^_]+)_(?P<uid>[0-9a-fA-F-]+)$")


POD_LOG_ROOTS = ("/var/log/pods/", "/var/log/containers/")


def is_pod_log(path: Path) -> bool:
    """Whether `path` is in the kubelet's pod-log layout (CRI or docker by definition): under
    /var/log/pods or /var/log/containers, or `<ns>_<pod>_<uid>/<container>/<n>.log` mounted elsewhere."""
    if str(path).startswith(POD_LOG_ROOTS):
        return True
    parts = path.parts
    return len(parts) >= 3 and _POD_DIR.match(parts[-3]) is not None


def kubernetes_metadata(path: Path) -> dict[str, Any]:
    """Namespace, pod, pod uid, container and restart count, or {} for a non-pod file."""
    real = Path(os.path.realpath(path))
    parts = real.parts
    if len(parts) < 3:
        return {}
    match = _POD_DIR.match(parts[-3])
    if match is None:
        return {}
    restart_text = real.name.split(".", 1)[0]
    return {"namespace": match["ns"], "pod": match["pod"], "pod_uid": match["uid"], "container": parts[-2],
            "restart": int(restart_text) if restart_text.isdigit() else 0}
