"""The group coordinator's settings, taken from the broker settings of the same Kafka names."""

from __future__ import annotations

from dataclasses import dataclass

from goqueue.config.settings import BrokerSettings

NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
"""How long a new member's parked JoinGroup may wait before it is dropped (Kafka's constant)."""


@dataclass(frozen=True, slots=True)
class GroupConfig:
    initial_rebalance_delay_ms: int = 3000
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    max_size: int = 2**31 - 1
    offset_metadata_max_bytes: int = 4096
    max_batch_bytes: int = 1_048_588
    """Largest batch of records the coordinator may write (the topic's max.message.bytes)."""
    new_member_join_timeout_ms: int = NEW_MEMBER_JOIN_TIMEOUT_MS
    consumer_session_timeout_ms: int = 45_000
    consumer_heartbeat_interval_ms: int = 5_000
    consumer_max_size: int = 2**31 - 1
    consumer_assignors: tuple[str, ...] = ("uniform", "range")
    offsets_retention_ms: int = 7 * 24 * 60 * 60 * 1000
    offsets_retention_check_interval_ms: int = 600_000

    @classmethod
    def from_settings(cls, settings: BrokerSettings) -> GroupConfig:
        return cls(
            initial_rebalance_delay_ms=settings.group_initial_rebalance_delay_ms,
            min_session_timeout_ms=settings.group_min_session_timeout_ms,
            max_session_timeout_ms=settings.group_max_session_timeout_ms,
            max_size=settings.group_max_size,
            offset_metadata_max_bytes=settings.offset_metadata_max_bytes,
            max_batch_bytes=settings.message_max_bytes,
            consumer_session_timeout_ms=settings.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms=settings.group_consumer_heartbeat_interval_ms,
            consumer_max_size=settings.group_consumer_max_size,
            offsets_retention_ms=settings.offsets_retention_ms
            if settings.offsets_retention_ms >= 0
            else settings.offsets_retention_minutes * 60_000,
            offsets_retention_check_interval_ms=settings.offsets_retention_check_interval_ms,
        )
