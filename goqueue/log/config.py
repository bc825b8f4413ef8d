"""Per-partition log settings, resolved from topic configs and broker defaults."""

from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class LogConfig:
    """What a partition log needs to know; immutable so a reconfiguration swaps it whole."""

    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * DAY_MS
    retention_ms: int = 7 * DAY_MS
    """-1 keeps data forever."""
    retention_bytes: int = -1
    """-1 means no size limit."""
    index_interval_bytes: int = 4096
    flush_messages: int = 2**63 - 1
    flush_ms: int = 1000
    file_delete_delay_ms: int = 60000
