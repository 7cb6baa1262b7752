"""PodInfo from API JSON: which container instances exist and have started."""

from __future__ import annotations

from collectors.pods.podinfo import PodInfo, stream_id


def test_reads_identity_labels_node_and_instances() -> None:
    pod = PodInfo.from_json({
        "metadata": {"uid": "u1", "name": "web", "namespace": "ns", "labels": {"app": "a"},
                     "resourceVersion": "42"},
        "spec": {"nodeName": "n1"},
        "status": {
            "containerStatuses": [
                {"name": "app", "restartCount": 3, "state": {"running": {"startedAt": "x"}}},
                {"name": "side", "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
            "initContainerStatuses": [{"name": "init", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}],
        },
    })
    assert (pod.uid, pod.name, pod.namespace, pod.node, pod.labels) == ("u1", "web", "ns", "n1", {"app": "a"})
    assert not pod.deleting
    app, side, init = pod.containers
    assert (app.restart, app.running, app.terminated, app.init) == (3, True, False, False)
    assert (side.running, side.terminated) == (False, False)
    assert (init.terminated, init.init) == (True, True)
    assert pod.instance("side") is side and pod.instance("nope") is None
    assert stream_id(pod.uid, "app", 3) == "pod:u1:app:3"


def test_pending_pod_without_status_and_a_deleted_pod() -> None:
    pending = PodInfo.from_json({"metadata": {"uid": "u", "name": "p", "namespace": "n"}})
    assert pending.containers == [] and pending.node == "" and pending.labels == {}
    deleted = PodInfo.from_json({"metadata": {"uid": "u", "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert deleted.deleting


def test_keeps_only_logweave_annotations() -> None:
    pod = PodInfo.from_json({"metadata": {"uid": "u", "annotations": {
        "logweave.io/parser": "json,nginx", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}}})
    assert pod.annotations == {"logweave.io/parser": "json,nginx"}
    assert PodInfo.from_json({"metadata": {"uid": "u"}}).annotations == {}
