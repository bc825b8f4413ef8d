"""The controller's decisions as pure functions of the metadata image (no I/O, no clock).

Kafka's rules (ReplicationControlManager and PartitionChangeBuilder): a leader is elected
from the in-sync replicas that are not fenced, in assignment order; only when the topic sets
`unclean.leader.election.enable=true` may an out-of-sync replica lead. A fenced broker leaves
every ISR, except that the last member stays, so the partition comes back without data loss
when that broker returns. Every change bumps the partition epoch; a change of leader also
bumps the leader epoch.

The state machine calls these functions while it applies a record, so every member of the
quorum computes the same image from the same records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from kio.schema.errors import ErrorCode

from goqueue.metadata.errors import PartitionChangeError, UnknownTopicError
from goqueue.metadata.image import NO_LEADER, MetadataImage, PartitionState, TopicInfo

UNCLEAN_ELECTION_CONFIG = "unclean.leader.election.enable"
Electable = Callable[[int], bool]


def unclean_allowed(topic: TopicInfo, image: MetadataImage) -> bool:
    """Whether the topic (or the cluster-wide default) allows electing an out-of-sync leader."""
    value = topic.configs.get(UNCLEAN_ELECTION_CONFIG)
    if value is None:
        value = image.broker_configs.get("", {}).get(UNCLEAN_ELECTION_CONFIG, "false")
    return value.strip().lower() == "true"


def electable_in(image: MetadataImage) -> Electable:
    """Registered brokers that are not fenced may lead and be in sync."""
    return lambda node: (broker := image.brokers.get(node)) is not None and not broker.fenced


def changed(state: PartitionState, **fields: object) -> PartitionState:
    """`state` with `fields` set and the partition epoch bumped (and the leader epoch too when
    the leader changes); the same object when nothing changes."""
    return one_change(state, replace(state, **fields))  # type: ignore[arg-type]


def one_change(before: PartitionState, after: PartitionState) -> PartitionState:
    """`after` as one change of `before`: the partition epoch one higher, the leader epoch
    one higher if the leader differs (however many steps computed `after`)."""
    if (after.replicas, after.leader, after.isr, after.adding, after.removing) == (
        before.replicas,
        before.leader,
        before.isr,
        before.adding,
        before.removing,
    ):
        return before
    leader_epoch = before.leader_epoch + (after.leader != before.leader)
    return replace(after, leader_epoch=leader_epoch, partition_epoch=before.partition_epoch + 1)


def elect_leader(
    state: PartitionState,
    electable: Electable,
    *,
    unclean: bool,
    exclude: Iterable[int] = (),
) -> PartitionState:
    """A state whose leader is an electable ISR member (the first in assignment order), else
    with unclean election an electable replica (the ISR becomes just it), else no leader.
    The current leader stays if it still qualifies."""
    excluded = set(exclude)
    candidates = [n for n in state.target_replicas if electable(n) and n not in excluded]
    in_sync = [n for n in candidates if n in state.isr]
    if state.leader in in_sync:
        return state
    if in_sync:
        return changed(state, leader=in_sync[0])
    if unclean and candidates:
        return changed(state, leader=candidates[0], isr=(candidates[0],))
    return changed(state, leader=NO_LEADER)


def without_replica_in_isr(state: PartitionState, node: int) -> PartitionState:
    """The ISR without `node`, unless it is the last member (Kafka keeps it so the partition
    can come back cleanly when that broker returns)."""
    if node not in state.isr or len(state.isr) == 1:
        return state
    return changed(state, isr=tuple(n for n in state.isr if n != node))


def fence_broker(image: MetadataImage, node: int) -> MetadataImage:
    """Fence `node`: move the leaderships it holds, drop it from ISRs."""
    broker = image.brokers.get(node)
    if broker is None or broker.fenced:
        return image
    image = image.with_broker(replace(broker, fenced=True))
    return leave_partitions(image, node)


def leave_partitions(image: MetadataImage, node: int) -> MetadataImage:
    """Elect new leaders where `node` leads and take it out of every ISR (a fenced broker, or
    one shutting down under control)."""
    electable = electable_in(image)
    changes: dict[str, dict[int, PartitionState]] = {}
    for topic in image.topics.values():
        unclean = unclean_allowed(topic, image)
        for index, state in topic.partition_states.items():
            if node not in state.replicas:
                continue
            new = state
            if new.leader == node:
                new = elect_leader(new, electable, unclean=unclean, exclude=(node,))
            new = one_change(state, without_replica_in_isr(new, node))
            if new is not state:
                changes.setdefault(topic.name, {})[index] = new
    return _with_changes(image, changes)


def elect_offline_leaders(image: MetadataImage) -> MetadataImage:
    """Give a leader to every partition without one that can have one now (a broker came
    back, or unclean election was switched on)."""
    electable = electable_in(image)
    changes: dict[str, dict[int, PartitionState]] = {}
    for topic in image.topics.values():
        unclean = unclean_allowed(topic, image)
        for index, state in topic.partition_states.items():
            if state.leader == NO_LEADER:
                new = elect_leader(state, electable, unclean=unclean)
                if new.leader != NO_LEADER:
                    changes.setdefault(topic.name, {})[index] = new
    return _with_changes(image, changes)


def _with_changes(
    image: MetadataImage, changes: Mapping[str, Mapping[int, PartitionState]]
) -> MetadataImage:
    for name, states in changes.items():
        image = image.with_topic(image.topics[name].with_partition_states(states))
    return image


def partition_state(image: MetadataImage, topic_id: uuid.UUID, index: int) -> PartitionState:
    """The state of one partition named by topic id (AlterPartition's addressing)."""
    topic = image.topics_by_id.get(topic_id)
    state = topic.partition_states.get(index) if topic is not None else None
    if topic is None or state is None:
        raise UnknownTopicError(f"Partition {index} of topic id {topic_id} does not exist.")
    return state


@dataclass(frozen=True, slots=True)
class AlterPartitionRequest:
    """A leader's proposal to change its ISR (Kafka's AlterPartition for one partition)."""

    leader_id: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[int, ...]


def alter_partition(
    image: MetadataImage, state: PartitionState, request: AlterPartitionRequest
) -> PartitionState:
    """The state after a leader's ISR change, checked as Kafka's controller checks it;
    a completed reassignment finishes in the same change."""
    if request.leader_epoch != state.leader_epoch:
        raise PartitionChangeError(
            f"Leader epoch {request.leader_epoch} is not the current {state.leader_epoch}.",
            ErrorCode.fenced_leader_epoch,
        )
    if request.leader_id != state.leader:
        raise PartitionChangeError(
            f"Broker {request.leader_id} is not the leader ({state.leader}).",
            ErrorCode.not_leader_or_follower,
        )
    if request.partition_epoch != state.partition_epoch:
        raise PartitionChangeError(
            f"Partition epoch {request.partition_epoch} is not the current "
            f"{state.partition_epoch}.",
            ErrorCode.invalid_update_version,
        )
    strangers = [n for n in request.new_isr if n not in state.replicas]
    if strangers or not request.new_isr:
        raise PartitionChangeError(
            f"The ISR {list(request.new_isr)} must be a non-empty subset of the replicas "
            f"{list(state.replicas)}.",
            ErrorCode.invalid_request,
        )
    electable = electable_in(image)
    ineligible = [n for n in request.new_isr if n not in state.isr and not electable(n)]
    if ineligible:
        raise PartitionChangeError(
            f"Replicas {ineligible} are fenced or not registered and cannot join the ISR.",
            ErrorCode.ineligible_replica,
        )
    new = changed(state, isr=tuple(n for n in state.replicas if n in request.new_isr))
    return one_change(state, complete_reassignment(new, electable))


def reassign(
    state: PartitionState, target: tuple[int, ...], electable: Electable
) -> PartitionState:
    """Start moving the partition to `target` (Kafka's AlterPartitionReassignments): the
    replicas become the union while the new ones catch up; with nothing to add, it completes
    at once. A reassignment already running is replaced, relative to its original replicas."""
    original = tuple(n for n in state.replicas if n not in state.adding)
    adding = tuple(n for n in target if n not in original)
    removing = tuple(n for n in original if n not in target)
    replicas = target + removing
    isr = tuple(n for n in state.isr if n in replicas)
    new = changed(state, replicas=replicas, isr=isr, adding=adding, removing=removing)
    return one_change(state, complete_reassignment(new, electable))


def cancel_reassignment(state: PartitionState, electable: Electable) -> PartitionState:
    """Return to the replicas before the reassignment; added replicas leave."""
    original = tuple(n for n in state.replicas if n not in state.adding)
    isr = tuple(n for n in state.isr if n in original) or state.isr[:1]
    new = changed(state, replicas=original, isr=isr, adding=(), removing=())
    if new.leader not in original:
        new = elect_leader(new, electable, unclean=False)
    return one_change(state, new)


def complete_reassignment(state: PartitionState, electable: Electable) -> PartitionState:
    """Once every target replica is in the ISR, drop the replicas being removed (electing a
    target replica if the leader was one of them). Kafka's maybeCompleteReassignment."""
    if not state.adding and not state.removing:
        return state
    target = state.target_replicas
    if any(n not in state.isr for n in target):
        return state
    new = changed(
        state,
        replicas=target,
        isr=tuple(n for n in target if n in state.isr),
        adding=(),
        removing=(),
    )
    if new.leader not in target:
        new = elect_leader(new, electable, unclean=False)
    return one_change(state, new)


def preferred_election_error(state: PartitionState, electable: Electable) -> ErrorCode | None:
    """Why the preferred replica cannot take over (ElectLeaders with PREFERRED), or None."""
    preferred = state.preferred_leader
    if state.leader == preferred:
        return ErrorCode.election_not_needed
    if preferred not in state.isr or not electable(preferred):
        return ErrorCode.preferred_leader_not_available
    return None


def unclean_election_error(state: PartitionState, electable: Electable) -> ErrorCode | None:
    """Why an unclean election would not help (ElectLeaders with UNCLEAN), or None."""
    if state.leader != NO_LEADER:
        return ErrorCode.election_not_needed
    if not any(electable(n) for n in state.target_replicas):
        return ErrorCode.eligible_leaders_not_available
    return None


def elect(
    state: PartitionState, electable: Electable, *, preferred: bool
) -> tuple[PartitionState, ErrorCode | None]:
    """One partition's ElectLeaders outcome: the new state, or why it stays as it is."""
    if preferred:
        error = preferred_election_error(state, electable)
        if error is None:
            return changed(state, leader=state.preferred_leader), None
        return state, error
    error = unclean_election_error(state, electable)
    if error is None:
        return elect_leader(state, electable, unclean=True), None
    return state, error


Outcome = tuple[ErrorCode, str | None]
"""A partition's answer in ElectLeaders or AlterPartitionReassignments: code and message."""
OK: Outcome = (ErrorCode.none, None)


def _state_of(image: MetadataImage, topic: str, index: int) -> PartitionState | None:
    info = image.topics.get(topic)
    return info.partition_states.get(index) if info is not None else None


def _unknown(topic: str, index: int) -> Outcome:
    return ErrorCode.unknown_topic_or_partition, f"Partition {topic}-{index} does not exist."


def plan_elections(
    image: MetadataImage, partitions: Iterable[tuple[str, int]], *, preferred: bool
) -> dict[tuple[str, int], Outcome]:
    """What ElectLeaders would do to each partition, without doing it."""
    electable = electable_in(image)
    outcomes: dict[tuple[str, int], Outcome] = {}
    for topic, index in partitions:
        state = _state_of(image, topic, index)
        if state is None:
            outcomes[(topic, index)] = _unknown(topic, index)
            continue
        _, error = elect(state, electable, preferred=preferred)
        outcomes[(topic, index)] = OK if error is None else (error, _ELECTION_MESSAGES[error])
    return outcomes


_ELECTION_MESSAGES = {
    ErrorCode.election_not_needed: "Leader election not needed for topic partition.",
    ErrorCode.preferred_leader_not_available: (
        "The preferred replica is not in the ISR or is not live."
    ),
    ErrorCode.eligible_leaders_not_available: "No live replica can become the leader.",
}


def all_partitions(image: MetadataImage) -> list[tuple[str, int]]:
    return [
        (topic.name, index)
        for topic in image.topics.values()
        for index in sorted(topic.partition_states)
    ]


def reassignment_problem(
    image: MetadataImage,
    topic: str,
    index: int,
    replicas: tuple[int, ...] | None,
    *,
    allow_replication_factor_change: bool = True,
) -> Outcome:
    """Why AlterPartitionReassignments refuses one partition (Kafka's checks and words)."""
    state = _state_of(image, topic, index)
    if state is None:
        return _unknown(topic, index)
    if replicas is None:
        if not state.adding and not state.removing:
            return ErrorCode.no_reassignment_in_progress, (
                f"No ongoing reassignment for {topic}-{index}."
            )
        return OK
    problem = replica_list_problem(image, replicas)
    if problem:
        return ErrorCode.invalid_replica_assignment, problem
    if not allow_replication_factor_change and len(replicas) != len(state.target_replicas):
        return ErrorCode.invalid_replication_factor, (
            "The replication factor is changed from "
            f"{len(state.target_replicas)} to {len(replicas)}"
        )
    return OK


def replica_list_problem(image: MetadataImage, replicas: tuple[int, ...]) -> str | None:
    """What is wrong with a manual replica list (Kafka's validateManualPartitionAssignment)."""
    if not replicas:
        return "The manual partition assignment includes an empty replica list."
    for node in replicas:
        if replicas.count(node) > 1:
            return f"The manual partition assignment includes the broker {node} more than once."
        if node not in image.brokers:
            return (
                f"The manual partition assignment includes broker {node}, but no such broker "
                "is registered."
            )
    return None


def manual_assignment_problem(
    image: MetadataImage, assignments: Mapping[int, tuple[int, ...]]
) -> str | None:
    """What is wrong with CreateTopics' manual assignment: partitions 0..n-1, each with a
    valid replica list of one common length."""
    if sorted(assignments) != list(range(len(assignments))):
        return "Partitions of a manual assignment must be consecutive and start at 0."
    if len({len(replicas) for replicas in assignments.values()}) > 1:
        return "All partitions of a manual assignment must have the same number of replicas."
    for replicas in assignments.values():
        problem = replica_list_problem(image, replicas)
        if problem:
            return problem
    return None


def imbalanced_partitions(image: MetadataImage, percentage: int) -> list[tuple[str, int]]:
    """Partitions to hand back to their preferred leader (Kafka's auto leader rebalance): for
    each live broker whose share of preferred partitions led by others exceeds `percentage`,
    those of them whose preferred replica is in sync."""
    electable = electable_in(image)
    preferred: dict[int, list[tuple[str, int, PartitionState]]] = {}
    for topic in image.topics.values():
        for index, state in topic.partition_states.items():
            preferred.setdefault(state.preferred_leader, []).append((topic.name, index, state))
    chosen = []
    for node, owned in preferred.items():
        if not electable(node):
            continue
        elsewhere = [(name, index, s) for name, index, s in owned if s.leader != node]
        if len(elsewhere) * 100 > percentage * len(owned):
            chosen += [
                (name, index)
                for name, index, s in elsewhere
                if preferred_election_error(s, electable) is None
            ]
    return sorted(chosen)
