"""The file collector: tails Kubernetes pod logs (CRI, docker json-file) and plain log files.

Split by job like Vector's kubernetes_logs source: discovery, formats, partial-line merging,
Kubernetes metadata from paths, file identity, checkpoints, tailing, and the service tying them.
"""
