"""What the collector needs to know of a pod, read from the API's JSON.

Objects stay plain JSON (no kubernetes model classes): listing and watching hundreds of pods is
cheaper that way, and only a handful of fields matter: identity, labels, node, and for each
container its restart count and whether it has started (only started containers have a log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ContainerInstance:
    """One run of one container: a restart is a new instance with a new log and a new stream id."""

    name: str
    restart: int
    running: bool
    terminated: bool
    init: bool = False


@dataclass(slots=True)
class PodInfo:
    uid: str
    namespace: str
    name: str
    node: str
    labels: dict[str, str]
    resource_version: str
    deleting: bool
    containers: list[ContainerInstance] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)  # only `logweave.io/...` (e.g. the pod's parser)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PodInfo:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        containers = _instances(status.get("containerStatuses"), init=False)
        containers += _instances(status.get("initContainerStatuses"), init=True)
        return cls(
            uid=str(meta.get("uid", "")),
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            node=str(spec.get("nodeName") or ""),
            labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
            resource_version=str(meta.get("resourceVersion", "")),
            deleting=meta.get("deletionTimestamp") is not None,
            containers=containers,
            annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()
                         if str(k).startswith("logweave.io/")},
        )

    def instance(self, container: str) -> ContainerInstance | None:
        return next((c for c in self.containers if c.name == container), None)


def _instances(statuses: Any, init: bool) -> list[ContainerInstance]:
    out = []
    for st in statuses or []:
        state = st.get("state") or {}
        out.append(ContainerInstance(
            name=str(st.get("name", "")), restart=int(st.get("restartCount") or 0),
            running="running" in state and state["running"] is not None,
            terminated="terminated" in state and state["terminated"] is not None, init=init,
        ))
    return out


def stream_id(uid: str, container: str, restart: int) -> str:
    """The source stream id of one container instance: `pod:<uid>:<container>:<restartCount>`."""
    return f"pod:{uid}:{container}:{restart}"
