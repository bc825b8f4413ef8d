"""What a partition leader knows of its followers: their log end offsets, whether each is caught
up, the ISR changes to propose and the high watermark. Pure state over offsets and clocks, as in
Kafka's Partition.scala and Replica.scala; the partition feeds it fetches and metadata, and does
the I/O.

An ISR change is proposed to the controller (AlterPartition) and applies only when the metadata
image brings it back; meanwhile it is *pending* and no other change is proposed. The high
watermark is computed over the *maximal* ISR (the committed ISR plus a replica being added), so
an acknowledged batch is on every replica that the controller may still count as in sync.
"""

from __future__ import annotations

from dataclasses import dataclass

NO_OFFSET = -1


@dataclass(slots=True)
class FollowerState:
    """Kafka's Replica: the follower's log end offset as its last fetch showed it, and when it
    was last caught up with the leader."""

    log_end_offset: int = NO_OFFSET
    last_caught_up_ms: int = 0
    last_fetch_leader_end_offset: int = NO_OFFSET
    last_fetch_ms: int = 0

    def update(self, fetch_offset: int, leader_end_offset: int, now_ms: int) -> None:
        """A fetch at `fetch_offset` proves the follower has everything below it. It is caught
        up if that reaches the leader's end now, or the end the leader had at its previous
        fetch (then it was caught up as of that fetch)."""
        if fetch_offset >= leader_end_offset:
            self.last_caught_up_ms = max(self.last_caught_up_ms, now_ms)
        elif fetch_offset >= self.last_fetch_leader_end_offset:
            self.last_caught_up_ms = max(self.last_caught_up_ms, self.last_fetch_ms)
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_end_offset = leader_end_offset
        self.last_fetch_ms = now_ms


class LeaderState:
    """The leader's view of one partition's replicas for one leader epoch."""

    def __init__(
        self,
        node_id: int,
        replicas: tuple[int, ...],
        isr: tuple[int, ...],
        epoch_start_offset: int,
        now_ms: int,
    ) -> None:
        self.node_id = node_id
        self.epoch_start_offset = epoch_start_offset
        """The leader's log end when its epoch began: a follower below it cannot join the ISR,
        because it may still hold a suffix of the previous leader that this one truncated."""
        self.replicas = replicas
        self.isr = isr
        self.pending_isr: tuple[int, ...] | None = None
        self.followers: dict[int, FollowerState] = {}
        self.set_replicas(replicas, isr, now_ms)

    def set_replicas(self, replicas: tuple[int, ...], isr: tuple[int, ...], now_ms: int) -> None:
        """Take the committed replicas and ISR from the metadata; ends a pending change. A
        follower that is new to the ISR counts as caught up now (Kafka resets its clock)."""
        self.replicas, self.pending_isr = replicas, None
        followers = {}
        for replica in replicas:
            if replica == self.node_id:
                continue
            state = self.followers.get(replica) or FollowerState()
            if replica in isr and (replica not in self.isr or not state.last_caught_up_ms):
                state.last_caught_up_ms = now_ms
            followers[replica] = state
        self.followers = followers
        self.isr = isr

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        """The ISR the high watermark and acks=all wait for: during a pending expansion the
        replica being added counts, during a pending shrink the one being removed still does."""
        pending = self.pending_isr
        if pending is None:
            return self.isr
        return self.isr + tuple(replica for replica in pending if replica not in self.isr)

    def high_watermark(self, leader_end_offset: int) -> int:
        """The smallest log end offset over the maximal ISR (the leader's own counts too)."""
        ends = [leader_end_offset]
        for replica in self.maximal_isr:
            if replica != self.node_id:
                follower = self.followers.get(replica)
                ends.append(follower.log_end_offset if follower else NO_OFFSET)
        return min(ends)

    def update_follower(
        self, replica: int, fetch_offset: int, leader_end_offset: int, now_ms: int
    ) -> bool:
        """Record a follower's fetch; False if it is not a replica of this partition."""
        follower = self.followers.get(replica)
        if follower is None:
            return False
        follower.update(fetch_offset, leader_end_offset, now_ms)
        return True

    def expansion(self, replica: int, high_watermark: int, fenced: bool) -> tuple[int, ...] | None:
        """The ISR to propose with `replica` added, if it has caught up to the high watermark
        and the start of this leader's epoch, is not fenced, and no change is pending."""
        follower = self.followers.get(replica)
        if follower is None or self.pending_isr is not None or replica in self.isr or fenced:
            return None
        end = follower.log_end_offset
        if end < high_watermark or end < self.epoch_start_offset:
            return None
        return (*self.isr, replica)

    def shrink(
        self, now_ms: int, max_lag_ms: int, leader_end_offset: int
    ) -> tuple[int, ...] | None:
        """The ISR to propose without the followers that were not caught up for `max_lag_ms`,
        if any and no change is pending. A follower that has fetched the leader's end is never
        out of sync, however long ago that was: there was simply nothing to fetch."""
        if self.pending_isr is not None:
            return None
        lagging = {
            replica
            for replica in self.isr
            if replica != self.node_id
            and (follower := self.followers.get(replica)) is not None
            and follower.log_end_offset != leader_end_offset
            and now_ms - follower.last_caught_up_ms > max_lag_ms
        }
        if not lagging:
            return None
        return tuple(replica for replica in self.isr if replica not in lagging)
