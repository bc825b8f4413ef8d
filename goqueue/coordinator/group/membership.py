"""The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, with the
session, rebalance, pending-sync and initial-delay timers that drive it.

This follows Kafka's group coordinator (`GroupMetadataManager`'s classic group operations)
transition for transition, so clients see the same errors at the same moments. Requests that
must wait for the rest of the group (JoinGroup until the join phase completes, SyncGroup until
the leader's assignment) park a waiter in the member; whichever operation completes the phase
resolves every waiter. Group snapshots are written when a generation's assignment is known and
when a group becomes empty; the in-memory state changes directly (`replay=False`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from kio.schema.errors import ErrorCode

from goqueue.coordinator.group.classic import (
    ClassicGroup,
    ClassicMember,
    ClassicState,
    GroupError,
)
from goqueue.coordinator.group.config import GroupConfig
from goqueue.coordinator.group.messages import (
    UNKNOWN_MEMBER_ID,
    HeartbeatRequest,
    JoinRequest,
    JoinResponse,
    LeaveResponse,
    LeavingMember,
    LeftMember,
    SyncRequest,
    SyncResponse,
    Waiter,
)
from goqueue.coordinator.group.records import group_record
from goqueue.coordinator.runtime import Result, Timer, batch_size_bound

logger = logging.getLogger(__name__)

NOTHING: Result[None] = Result(None)
PREPARING = ClassicState.PREPARING_REBALANCE
COMPLETING = ClassicState.COMPLETING_REBALANCE
STABLE = ClassicState.STABLE
EMPTY = ClassicState.EMPTY
DEAD = ClassicState.DEAD


def heartbeat_key(group_id: str, member_id: str) -> str:
    return f"heartbeat-{group_id}-{member_id}"


def join_key(group_id: str) -> str:
    return f"join-{group_id}"


def sync_key(group_id: str) -> str:
    return f"sync-{group_id}"


class GroupDirectory(Protocol):
    """The shard's groups of every type, as the classic protocol needs them."""

    def find(self, group_id: str) -> object | None: ...

    def create_classic(self, group_id: str) -> ClassicGroup: ...

    def drop(self, group_id: str) -> None: ...


class ClassicMembership:
    """The classic protocol's operations over the shard's groups."""

    def __init__(self, groups: GroupDirectory, timer: Timer, config: GroupConfig) -> None:
        self._groups = groups
        self._timer = timer
        self._config = config

    def group(self, group_id: str) -> ClassicGroup | None:
        group = self._groups.find(group_id)
        return group if isinstance(group, ClassicGroup) else None

    # JoinGroup.

    def join(self, request: JoinRequest, waiter: Waiter[JoinResponse]) -> Result[None]:
        def refuse(error: ErrorCode, member_id: str = request.member_id) -> Result[None]:
            waiter.set_result(JoinResponse(error, member_id))
            return NOTHING

        if not request.group_id:
            return refuse(ErrorCode.invalid_group_id)
        if not (
            self._config.min_session_timeout_ms
            <= request.session_timeout_ms
            <= self._config.max_session_timeout_ms
        ):
            return refuse(ErrorCode.invalid_session_timeout)
        existing = self._groups.find(request.group_id)
        if existing is not None and not isinstance(existing, ClassicGroup):
            return refuse(ErrorCode.inconsistent_group_protocol, UNKNOWN_MEMBER_ID)
        unknown = request.member_id == UNKNOWN_MEMBER_ID
        if existing is None:
            if not unknown:
                return refuse(ErrorCode.unknown_member_id)
            group = self._groups.create_classic(request.group_id)
        else:
            group = existing
        if not self._accept_joining_member(group, request.member_id):
            group.remove(request.member_id)
            result = refuse(ErrorCode.group_max_size_reached, UNKNOWN_MEMBER_ID)
        elif unknown:
            result = self._join_new_member(request, group, waiter)
        else:
            result = self._join_existing_member(request, group, waiter)
        if existing is None and not group.members and not group.pending_join_members:
            self._groups.drop(request.group_id)
        return result

    def _accept_joining_member(self, group: ClassicGroup, member_id: str) -> bool:
        """`group.max.size`: counted in members awaiting a join while rebalancing (so the
        last to rejoin are the ones left out), in members otherwise."""
        limit = self._config.max_size
        if group.is_in(EMPTY, DEAD):
            return True
        if group.is_in(PREPARING):
            member = group.members.get(member_id)
            return (member is not None and member.awaiting_join) or group.num_awaiting_join < limit
        return group.has_member(member_id) or len(group.members) < limit

    def _join_new_member(
        self, request: JoinRequest, group: ClassicGroup, waiter: Waiter[JoinResponse]
    ) -> Result[None]:
        if group.is_in(DEAD):
            waiter.set_result(JoinResponse(ErrorCode.coordinator_not_available, UNKNOWN_MEMBER_ID))
            return NOTHING
        if not group.supports_protocols(request.protocol_type, _names(request)):
            waiter.set_result(
                JoinResponse(ErrorCode.inconsistent_group_protocol, UNKNOWN_MEMBER_ID)
            )
            return NOTHING
        member_id = group.new_member_id(request.client_id, request.group_instance_id)
        if request.group_instance_id is not None:
            existing = group.static_members.get(request.group_instance_id)
            if existing is not None:
                logger.info(
                    "static member %s of group %s rejoins as %s, replacing %s",
                    request.group_instance_id,
                    group.group_id,
                    member_id,
                    existing,
                )
                return self._replace_static_member(request, group, existing, member_id, waiter)
            return self._add_member_and_rebalance(request, group, member_id, waiter)
        if request.require_known_member_id:
            group.pending_join_members.add(member_id)
            self._schedule_heartbeat(group.group_id, member_id, request.session_timeout_ms)
            waiter.set_result(JoinResponse(ErrorCode.member_id_required, member_id))
            return NOTHING
        return self._add_member_and_rebalance(request, group, member_id, waiter)

    def _join_existing_member(
        self, request: JoinRequest, group: ClassicGroup, waiter: Waiter[JoinResponse]
    ) -> Result[None]:
        member_id = request.member_id

        def answer(error: ErrorCode) -> Result[None]:
            waiter.set_result(JoinResponse(error, member_id))
            return NOTHING

        if group.is_in(DEAD):
            return answer(ErrorCode.coordinator_not_available)
        if not group.supports_protocols(request.protocol_type, _names(request)):
            return answer(ErrorCode.inconsistent_group_protocol)
        if member_id in group.pending_join_members:
            if request.group_instance_id is not None:
                return answer(ErrorCode.unknown_server_error)
            return self._add_member_and_rebalance(request, group, member_id, waiter)
        try:
            member = group.validate_member(member_id, request.group_instance_id)
        except GroupError as exc:
            logger.info("JoinGroup of %s to group %s: %s", member_id, group.group_id, exc)
            return answer(exc.error)
        if group.is_in(PREPARING):
            return self._update_member_and_rebalance(request, group, member, waiter)
        if group.is_in(COMPLETING):
            if member.matches(request.protocols):
                waiter.set_result(group.join_response(member_id))
                return NOTHING
            return self._update_member_and_rebalance(request, group, member, waiter)
        if group.is_in(STABLE):
            if group.is_leader(member_id) or not member.matches(request.protocols):
                return self._update_member_and_rebalance(request, group, member, waiter)
            waiter.set_result(group.join_response(member_id))
            return NOTHING
        return answer(ErrorCode.unknown_member_id)

    def _add_member_and_rebalance(
        self,
        request: JoinRequest,
        group: ClassicGroup,
        member_id: str,
        waiter: Waiter[JoinResponse],
    ) -> Result[None]:
        member = ClassicMember(
            member_id,
            request.group_instance_id,
            request.client_id,
            request.client_host,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            request.protocol_type,
            request.protocols,
        )
        member.is_new = True
        if group.is_in(PREPARING) and group.previous_state is EMPTY:
            group.new_member_added = True
        group.add(member, waiter)
        # A parked JoinGroup cannot heartbeat; a client that gave up would otherwise leave a
        # defunct member behind, so new members get a generous join timeout instead.
        self._schedule_heartbeat(group.group_id, member_id, self._config.new_member_join_timeout_ms)
        return self._maybe_prepare_rebalance_or_complete_join(group)

    def _update_member_and_rebalance(
        self,
        request: JoinRequest,
        group: ClassicGroup,
        member: ClassicMember,
        waiter: Waiter[JoinResponse],
    ) -> Result[None]:
        group.update_member(
            member,
            request.protocols,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            waiter,
        )
        return self._maybe_prepare_rebalance_or_complete_join(group)

    def _replace_static_member(
        self,
        request: JoinRequest,
        group: ClassicGroup,
        old_member_id: str,
        new_member_id: str,
        waiter: Waiter[JoinResponse],
    ) -> Result[None]:
        """A static member restarted (KIP-345): it takes over its old member id's place and
        assignment, and the group rebalances only if that changes the group's protocol."""
        current_leader = group.leader_id or ""
        self._timer.cancel(heartbeat_key(group.group_id, old_member_id))
        member = group.replace_static_member(
            request.group_instance_id or "", old_member_id, new_member_id
        )
        self._schedule_heartbeat(group.group_id, new_member_id, member.session_timeout_ms)
        group.update_member(
            member,
            request.protocols,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            waiter,
        )
        if group.is_in(STABLE):
            if group.protocol_name != group.select_protocol():
                return self._maybe_prepare_rebalance_or_complete_join(group)
            records = [group_record(group.group_id, group.snapshot())]
            is_leader = group.is_leader(new_member_id)
            if request.supports_skip_assignment:
                response = group.join_response(new_member_id, skip_assignment=is_leader)
            else:
                response = JoinResponse(
                    ErrorCode.none,
                    new_member_id,
                    group.generation_id,
                    group.protocol_type,
                    group.protocol_name,
                    current_leader,
                )
            group.complete_join(member, response)
            return Result(None, records, replay=False)
        if group.is_in(COMPLETING):
            # The leader may already be assigning to the old member id: start over.
            return self._prepare_rebalance(group)
        return self._maybe_complete_join_phase(group)

    # The join phase.

    def _maybe_prepare_rebalance_or_complete_join(self, group: ClassicGroup) -> Result[None]:
        if group.can_rebalance():
            return self._prepare_rebalance(group)
        return self._maybe_complete_join_phase(group)

    def _maybe_complete_join_phase(self, group: ClassicGroup) -> Result[None]:
        if not group.is_in(PREPARING) or group.previous_state is EMPTY:
            return NOTHING
        if not group.has_all_members_joined():
            return NOTHING
        return self._complete_join(group)

    def prepare_rebalance(self, group: ClassicGroup) -> Result[None]:
        """Start a rebalance (used by the shard when a loaded group is over capacity)."""
        return self._prepare_rebalance(group)

    def _prepare_rebalance(self, group: ClassicGroup) -> Result[None]:
        if group.is_in(COMPLETING):
            self._reset_and_propagate_assignment(group, ErrorCode.rebalance_in_progress)
        self._remove_sync_expiration(group)
        initial = group.is_in(EMPTY)
        group_id = group.group_id
        if initial:
            delay = self._config.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms - delay, 0)
            self._timer.schedule(
                join_key(group_id),
                delay,
                lambda: self._complete_initial_rebalance(group_id, delay, remaining),
            )
        group.transition_to(PREPARING, self._timer.now_ms())
        logger.info(
            "preparing to rebalance group %s with old generation %d",
            group_id,
            group.generation_id,
        )
        if initial:
            return NOTHING
        if group.has_all_members_joined():
            return self._complete_join(group)
        self._timer.schedule(
            join_key(group_id), group.rebalance_timeout_ms, lambda: self._complete_join_of(group_id)
        )
        return NOTHING

    def _complete_initial_rebalance(
        self, group_id: str, delay_ms: int, remaining_ms: int
    ) -> Result[None]:
        """The initial rebalance of a new group waits `group.initial.rebalance.delay.ms`, and
        again while members keep joining, up to the rebalance timeout, so that a group of
        consumers starting together gets one rebalance instead of one per consumer."""
        group = self.group(group_id)
        if group is None:
            return NOTHING
        if group.new_member_added and remaining_ms != 0:
            group.new_member_added = False
            next_delay = min(self._config.initial_rebalance_delay_ms, remaining_ms)
            next_remaining = max(remaining_ms - delay_ms, 0)
            self._timer.schedule(
                join_key(group_id),
                next_delay,
                lambda: self._complete_initial_rebalance(group_id, next_delay, next_remaining),
            )
            return NOTHING
        return self._complete_join(group)

    def _complete_join_of(self, group_id: str) -> Result[None]:
        group = self.group(group_id)
        return NOTHING if group is None else self._complete_join(group)

    def _complete_join(self, group: ClassicGroup) -> Result[None]:
        """End the join phase: drop dynamic members that did not rejoin, start the next
        generation and answer every parked JoinGroup (the leader gets everyone's metadata)."""
        group_id = group.group_id
        self._timer.cancel(join_key(group_id))
        dropped = [m.member_id for m in group.not_yet_rejoined() if not m.is_static]
        for member_id in dropped:
            group.remove(member_id)
            self._timer.cancel(heartbeat_key(group_id, member_id))
        if dropped:
            logger.info("group %s removed members that did not rejoin: %s", group_id, dropped)
        if group.is_in(DEAD):
            return NOTHING
        if not group.maybe_elect_new_joined_leader() and group.members:
            logger.warning("group %s cannot complete its rebalance: no member rejoined", group_id)
            self._timer.schedule(
                join_key(group_id),
                group.rebalance_timeout_ms,
                lambda: self._complete_join_of(group_id),
            )
            return NOTHING
        group.init_next_generation(self._timer.now_ms())
        if group.is_empty:
            logger.info("group %s with generation %d is now empty", group_id, group.generation_id)
            return Result(None, [group_record(group_id, group.snapshot())], replay=False)
        logger.info(
            "group %s stabilised generation %d with %d members (protocol %s)",
            group_id,
            group.generation_id,
            len(group.members),
            group.protocol_name,
        )
        for member in group.members.values():
            group.complete_join(member, group.join_response(member.member_id))
            self._schedule_heartbeat(group_id, member.member_id, member.session_timeout_ms)
            member.is_new = False
            group.pending_sync_members.add(member.member_id)
        generation = group.generation_id
        self._timer.schedule(
            sync_key(group_id),
            group.rebalance_timeout_ms,
            lambda: self._expire_pending_sync(group_id, generation),
        )
        return NOTHING

    # SyncGroup.

    def sync(self, request: SyncRequest, waiter: Waiter[SyncResponse]) -> Result[None]:
        def answer(error: ErrorCode) -> Result[None]:
            waiter.set_result(SyncResponse(error))
            return NOTHING

        if not request.group_id:
            return answer(ErrorCode.invalid_group_id)
        group = self.group(request.group_id)
        if group is None or group.is_empty:
            return answer(ErrorCode.unknown_member_id)
        if group.is_in(DEAD):
            return answer(ErrorCode.coordinator_not_available)
        try:
            member = group.validate_member(request.member_id, request.group_instance_id)
        except GroupError as exc:
            return answer(exc.error)
        if request.generation_id != group.generation_id:
            return answer(ErrorCode.illegal_generation)
        if _inconsistent(request.protocol_type, group.protocol_type) or _inconsistent(
            request.protocol_name, group.protocol_name
        ):
            return answer(ErrorCode.inconsistent_group_protocol)
        if group.is_in(PREPARING):
            return answer(ErrorCode.rebalance_in_progress)
        if group.is_in(STABLE):
            self._remove_pending_sync_member(group, member.member_id)
            waiter.set_result(
                SyncResponse(
                    ErrorCode.none, group.protocol_type, group.protocol_name, member.assignment
                )
            )
            return NOTHING
        member.sync_waiter = waiter
        self._remove_pending_sync_member(group, member.member_id)
        if not group.is_leader(member.member_id):
            return NOTHING
        return self._assign(group, request.assignments)

    def _assign(self, group: ClassicGroup, assignments: Mapping[str, bytes]) -> Result[None]:
        """The leader's assignment: persist the generation with it, then hand it out. One
        that cannot be written answers UNKNOWN_SERVER_ERROR and rebalances, as in Kafka."""
        previous = {m.member_id: m.assignment for m in group.members.values()}
        for member in group.members.values():
            member.assignment = assignments.get(member.member_id, b"")
        records = [group_record(group.group_id, group.snapshot())]
        if batch_size_bound(records) > self._config.max_batch_bytes:
            for member in group.members.values():
                member.assignment = previous[member.member_id]
            logger.warning(
                "group %s: the assignment of generation %d does not fit in a record of "
                "max.message.bytes=%d; rebalancing",
                group.group_id,
                group.generation_id,
                self._config.max_batch_bytes,
            )
            self._reset_and_propagate_assignment(group, ErrorCode.unknown_server_error)
            return self._maybe_prepare_rebalance_or_complete_join(group)
        self._propagate_assignment(group, ErrorCode.none)
        group.transition_to(STABLE, self._timer.now_ms())
        return Result(None, records, replay=False)

    def _reset_and_propagate_assignment(self, group: ClassicGroup, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, error)

    def _propagate_assignment(self, group: ClassicGroup, error: ErrorCode) -> None:
        ok = error == ErrorCode.none
        for member in group.members.values():
            response = SyncResponse(
                error,
                group.protocol_type if ok else None,
                group.protocol_name if ok else None,
                member.assignment,
            )
            if group.complete_sync(member, response):
                self._schedule_heartbeat(
                    group.group_id, member.member_id, member.session_timeout_ms
                )

    def _remove_pending_sync_member(self, group: ClassicGroup, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        if not group.is_in(COMPLETING, STABLE) or not group.pending_sync_members:
            self._timer.cancel(sync_key(group.group_id))

    def _remove_sync_expiration(self, group: ClassicGroup) -> None:
        group.pending_sync_members.clear()
        self._timer.cancel(sync_key(group.group_id))

    def _expire_pending_sync(self, group_id: str, generation: int) -> Result[None]:
        """Members that got their JoinGroup answer but never synced within the rebalance
        timeout are removed, and the group rebalances without them."""
        group = self.group(group_id)
        if group is None or generation != group.generation_id:
            return NOTHING
        if not group.is_in(COMPLETING, STABLE) or not group.pending_sync_members:
            return NOTHING
        missing = sorted(group.pending_sync_members)
        for member_id in missing:
            group.remove(member_id)
            self._timer.cancel(heartbeat_key(group_id, member_id))
        logger.info("group %s removed members that never synced: %s", group_id, missing)
        return self._prepare_rebalance(group)

    # Heartbeat and sessions.

    def heartbeat(self, request: HeartbeatRequest) -> ErrorCode:
        if not request.group_id:
            return ErrorCode.invalid_group_id
        group = self.group(request.group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.is_in(DEAD):
            return ErrorCode.coordinator_not_available
        try:
            member = group.validate_member(request.member_id, request.group_instance_id)
        except GroupError as exc:
            return exc.error
        if request.generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if group.is_empty:
            return ErrorCode.unknown_member_id
        self._schedule_heartbeat(group.group_id, member.member_id, member.session_timeout_ms)
        if group.is_in(PREPARING):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def touch(self, group: ClassicGroup, member_id: str) -> None:
        """An offset commit from a member of a Stable or rebalancing group keeps its session."""
        member = group.members.get(member_id)
        if member is not None and group.is_in(STABLE, PREPARING):
            self._schedule_heartbeat(group.group_id, member_id, member.session_timeout_ms)

    def schedule_session(self, group: ClassicGroup, member: ClassicMember) -> None:
        self._schedule_heartbeat(group.group_id, member.member_id, member.session_timeout_ms)

    def _schedule_heartbeat(self, group_id: str, member_id: str, timeout_ms: int) -> None:
        self._timer.schedule(
            heartbeat_key(group_id, member_id),
            timeout_ms,
            lambda: self._expire_heartbeat(group_id, member_id),
        )

    def _expire_heartbeat(self, group_id: str, member_id: str) -> Result[None]:
        group = self.group(group_id)
        if group is None or group.is_in(DEAD):
            return NOTHING
        if member_id in group.pending_join_members:
            group.remove(member_id)
            if group.is_in(PREPARING) and group.has_all_members_joined():
                return self._complete_join(group)
            return NOTHING
        member = group.members.get(member_id)
        if member is None or member.has_satisfied_heartbeat():
            return NOTHING
        logger.info("member %s of group %s failed its session; removing it", member_id, group_id)
        return self._remove_member_and_update(group, member)

    def _remove_member_and_update(self, group: ClassicGroup, member: ClassicMember) -> Result[None]:
        group.complete_join(member, JoinResponse(ErrorCode.unknown_member_id, UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)
        if group.is_in(STABLE, COMPLETING):
            return self._maybe_prepare_rebalance_or_complete_join(group)
        if group.is_in(PREPARING) and group.has_all_members_joined():
            return self._complete_join(group)
        return NOTHING

    # LeaveGroup.

    def leave(self, group_id: str, members: Sequence[LeavingMember]) -> Result[LeaveResponse]:
        if not group_id:
            return Result(LeaveResponse(ErrorCode.invalid_group_id))
        group = self.group(group_id)
        if group is None:
            return Result(LeaveResponse(ErrorCode.unknown_member_id))
        if group.is_in(DEAD):
            return Result(LeaveResponse(ErrorCode.coordinator_not_available))
        results = [self._leave_one(group, leaving) for leaving in members]
        outcome = NOTHING
        if any(r.error == ErrorCode.none for r in results):
            if group.is_in(STABLE, COMPLETING):
                outcome = self._maybe_prepare_rebalance_or_complete_join(group)
            elif group.is_in(PREPARING):
                outcome = self._maybe_complete_join_phase(group)
        return Result(LeaveResponse(ErrorCode.none, tuple(results)), outcome.records, replay=False)

    def _leave_one(self, group: ClassicGroup, leaving: LeavingMember) -> LeftMember:
        member_id = leaving.member_id
        instance_id = leaving.group_instance_id

        def result(error: ErrorCode) -> LeftMember:
            return LeftMember(member_id, instance_id, error)

        reason = leaving.reason or "not provided"
        if member_id == UNKNOWN_MEMBER_ID:
            holder = group.static_members.get(instance_id) if instance_id else None
            if holder is None:
                return result(ErrorCode.unknown_member_id)
            self._remove_current_member(group, holder, reason)
            return result(ErrorCode.none)
        if member_id in group.pending_join_members:
            group.remove(member_id)
            self._timer.cancel(heartbeat_key(group.group_id, member_id))
            return result(ErrorCode.none)
        try:
            group.validate_member(member_id, instance_id)
        except GroupError as exc:
            return result(exc.error)
        self._remove_current_member(group, member_id, reason)
        return result(ErrorCode.none)

    def _remove_current_member(self, group: ClassicGroup, member_id: str, reason: str) -> None:
        member = group.members[member_id]
        self._timer.cancel(heartbeat_key(group.group_id, member_id))
        logger.info("member %s left group %s (reason: %s)", member_id, group.group_id, reason)
        group.complete_join(member, JoinResponse(ErrorCode.unknown_member_id, UNKNOWN_MEMBER_ID))
        group.remove(member_id)

    def cancel_timers(self, group: ClassicGroup) -> None:
        """Stop every timer of a group that is being deleted."""
        for member_id in [*group.members, *group.pending_join_members]:
            self._timer.cancel(heartbeat_key(group.group_id, member_id))
        self._timer.cancel(join_key(group.group_id))
        self._timer.cancel(sync_key(group.group_id))


def _names(request: JoinRequest) -> set[str]:
    return {protocol.name for protocol in request.protocols}


def _inconsistent(requested: str | None, actual: str | None) -> bool:
    """SyncGroup v5+ names the protocol it expects; older versions send null."""
    return requested is not None and requested != actual
