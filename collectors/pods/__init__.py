"""The pod collector: streams label-selected pods' container logs through the Kubernetes API.

For clusters where a node DaemonSet is not wanted (managed nodes, one team's namespace). Split by
job: API client loading, selectors and scope, pod metadata, the pod watcher (list + watch), the
stream supervisor (which container instances to stream), the log streamer (one followed log),
line splitting, positions and resume, batching, metrics, and the service tying them together.
"""
