"""The App's stream flow control: resuming a flow that was never suspended keeps what agents have queued.

faust clears every agent's input queue whenever `app.flow_control.resume()` is called, also when the
flow was already running. At the end of every rebalance (a worker's start included) faust resumes
the assigned stream partitions, awaits the seek to their committed offsets, and only then calls
`resume()`: records fetched while the seek was in flight are already in the agents' queues and
faust's read offsets have moved past them. The resume drops them, and the re-fetch after the seek
skips them as already read, while faust's gap filling lets later acks commit past them. Seen as 10
lines of one `sink.file` record never written after a worker was killed and replaced (the drain's
queue held that record when its replacement finished its first rebalance); the parse and group
agents' queues are cleared the same way.

Records queued while the flow runs belong to partitions this worker owns, so they are kept. When the
flow was suspended (a rebalance revokes partitions: their queued events must not be processed), a
resume clears the queues as before; faust's revoke handler also clears them itself.
"""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent


class KeepQueuedOnResume(FlowControlEvent):  # type: ignore[misc]
    """`FlowControlEvent` whose `resume()` clears the queues only when the flow was suspended."""

    def resume(self) -> None:
        if self.is_active():
            return  # already flowing: nothing queued belongs to a revoked partition
        super().resume()
